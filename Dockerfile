# syntax=docker/dockerfile:1
# Build: docker build --build-arg VERSION=$(git describe --tags --always) -t tusproxy .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tusproxy ./cmd/tusproxy \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tusproxy /usr/local/bin/tusproxy
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
# TUSPROXY_METRICS_LISTEN is set explicitly: tusproxy serve binds the admin
# listener (/metrics, /healthz, /readyz) to 127.0.0.1 by default, which
# inside a container nothing outside it (health checks, Prometheus, a
# published port) can reach. It has no auth and its metrics name upload ids:
# publish 9090 on a private address only (docker run -p 127.0.0.1:9090:9090).
ENV TUSPROXY_LISTEN=:8080 \
    TUSPROXY_METRICS_LISTEN=:9090 \
    TUSPROXY_STORE=bolt:/data/tusproxy.db
EXPOSE 8080 9090
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/tusproxy"]
CMD ["serve"]
