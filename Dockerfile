# Builds the mcp-bridge image: a static binary on a distroless base, running as non-root.
#   docker build -t mcp-bridge .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w -X main.buildVersion=${VERSION}" -o /out/mcp-bridge ./cmd/mcp-bridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcp-bridge /usr/local/bin/mcp-bridge
# 18848: MCP-over-xDS (Istiod's configSources). The admin listener stays on 127.0.0.1 by default;
# Kubernetes probes use the gRPC health service on 18848.
EXPOSE 18848
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/mcp-bridge"]
CMD ["serve"]
