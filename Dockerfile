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
# Production unless told otherwise: the baked-in example is refused until every placeholder is
# replaced through its CHATGATE_* variable (see `chatgate config check`) and Redis is configured.
# A local demo of the image: docker run -e CHATGATE_ENV=development … (the sign-in picker then
# answers only clients on the container's own loopback).
ENV CHATGATE_CONFIG=/etc/chatgate/chatgate.yaml CHATGATE_LISTEN=:8080 CHATGATE_ENV=production
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/chatgate", "healthcheck"]
ENTRYPOINT ["/chatgate"]
CMD ["serve"]
