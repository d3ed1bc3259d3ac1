# syntax=docker/dockerfile:1
# The coordinator image: the coordinator daemon and the `gauntlet` CLI with the shared libraries
# they were linked against. Binaries are built on the build machine (same Debian release) and
# staged by deploy/stage_images.sh; build with
#   docker build -f deploy/docker/coordinator.Dockerfile dist/images/coordinator

# Stage 1: check that every staged binary resolves all of its libraries on the runtime base, so a
# missing library fails the image build instead of the pod's start.
FROM debian:12.11-slim AS verify
COPY bin/ /opt/gauntlet/bin/
COPY lib/ /opt/gauntlet/lib/
RUN missing="$(LD_LIBRARY_PATH=/opt/gauntlet/lib ldd /opt/gauntlet/bin/* | grep 'not found' || true)"; \
    if [ -n "$missing" ]; then echo "unresolved libraries:"; echo "$missing"; exit 1; fi; \
    /opt/gauntlet/bin/coordinator --version >/dev/null

# Stage 2: the runtime image, without build tools or package manager runs.
FROM debian:12.11-slim
RUN groupadd --system --gid 10001 gauntlet \
    && useradd --system --uid 10001 --gid gauntlet --home-dir /var/lib/gauntlet \
       --shell /usr/sbin/nologin gauntlet \
    && mkdir -p /var/lib/gauntlet \
    && chown gauntlet:gauntlet /var/lib/gauntlet
COPY --from=verify /opt/gauntlet/ /opt/gauntlet/
ENV LD_LIBRARY_PATH=/opt/gauntlet/lib \
    PATH=/opt/gauntlet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GAUNTLET_COORDINATOR=127.0.0.1:50051
USER 10001:10001
WORKDIR /var/lib/gauntlet
VOLUME ["/var/lib/gauntlet"]
EXPOSE 50051 9464
# grpcurl (a static binary, staged) asks the standard gRPC health service, which needs no token.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "grpcurl -plaintext -max-time 4 127.0.0.1:50051 grpc.health.v1.Health/Check | grep -q '\"SERVING\"'"]
ENTRYPOINT ["/opt/gauntlet/bin/coordinator"]
CMD ["--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464", "--db=/var/lib/gauntlet/gauntlet.db"]
