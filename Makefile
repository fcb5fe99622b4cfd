.PHONY: run test build
run:
	go run ./cmd/chatgate serve
test:
	./scripts/test.sh
build:
	CGO_ENABLED=0 go build -trimpath -o bin/chatgate ./cmd/chatgate
