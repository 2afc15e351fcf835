# The release binary in a slim Debian, as a non-root user, with a health check on /healthz.
#
#   make build && docker build -t proxy .          # from a checkout (./proxy is the binary)
#   docker run --rm -p 127.0.0.1:8080:8080 proxy
#
# The release workflow builds it the same way from the Linux x86_64 release archive's binary
# and smoke-tests it. compose.yaml runs it with Redis for a local try.
FROM debian:bookworm-slim

# ca-certificates: https upstreams and rediss://; curl: the health check below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 proxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin proxy

COPY --chmod=0755 proxy /usr/local/bin/proxy

USER 10001:10001
# Settings are environment variables (docker run -e, compose `environment:`), or a file mounted
# as /etc/proxy/.env (read from the working directory). No ENV here: it would beat that file.
# The defaults already listen on 0.0.0.0:8080, and logs are JSON lines when stdout is no terminal.
# Another port: set PORT in the environment (-e PORT=...), which the health check reads too.
WORKDIR /etc/proxy
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT:-8080}/healthz" || exit 1

ENTRYPOINT ["/usr/local/bin/proxy"]
CMD ["serve"]
