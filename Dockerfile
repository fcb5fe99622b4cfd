# syntax=docker/dockerfile:1
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/chatgate ./cmd/chatgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatgate /chatgate
# Mount the real configuration here (or set CHATGATE_CONFIG); secrets come from CHATGATE_* variables.
COPY configs/chatgate.yaml /etc/chatgate/chatgate.yaml
ENV CHATGATE_CONFIG=/etc/chatgate/chatgate.yaml CHATGATE_LISTEN=:8080
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/chatgate", "healthcheck"]
ENTRYPOINT ["/chatgate"]
CMD ["serve"]
