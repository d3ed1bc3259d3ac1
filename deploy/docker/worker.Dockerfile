# syntax=docker/dockerfile:1
# The worker image: the worker agent, the CUDA build of the trainer, and the LibTorch, CUDA
# library and NCCL builds of the torch wheel the trainer was compiled against (2.11.0, CUDA 13).
# Staged by deploy/stage_images.sh; build with
#   docker build -f deploy/docker/worker.Dockerfile dist/images/worker

# Stage 1: LibTorch and NCCL come from the same PyPI wheel the build machine compiled against.
FROM python:3.12.11-slim-bookworm AS torch
RUN pip install --no-cache-dir --target /wheel torch==2.11.0 \
    && mkdir -p /out/lib \
    && cp -a /wheel/torch/lib/. /out/lib/ \
    && for dir in /wheel/nvidia/*/lib; do cp -a "$dir"/. /out/lib/; done \
    && rm -f /out/lib/libtorch_python.so

# Stage 2: check that the worker and trainer resolve every library on the runtime base
# (libcuda.so.1 comes from the driver at run time, through the NVIDIA container runtime).
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04 AS verify
COPY --from=torch /out/lib/ /opt/gauntlet/lib/
COPY bin/ /opt/gauntlet/bin/
COPY lib/ /opt/gauntlet/lib/
RUN missing="$(LD_LIBRARY_PATH=/opt/gauntlet/lib ldd /opt/gauntlet/bin/* | grep 'not found' | grep -v 'libcuda.so.1' || true)"; \
    if [ -n "$missing" ]; then echo "unresolved libraries:"; echo "$missing"; exit 1; fi

# Stage 3: the runtime image, without build tools or package manager runs.
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04
RUN groupadd --system --gid 10001 gauntlet \
    && useradd --system --uid 10001 --gid gauntlet --home-dir /var/lib/gauntlet-worker \
       --shell /usr/sbin/nologin gauntlet \
    && mkdir -p /var/lib/gauntlet-worker /data \
    && chown gauntlet:gauntlet /var/lib/gauntlet-worker
COPY --from=verify /opt/gauntlet/ /opt/gauntlet/
ENV LD_LIBRARY_PATH=/opt/gauntlet/lib \
    PATH=/opt/gauntlet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NCCL_NVLS_ENABLE=0 \
    GAUNTLET_COORDINATOR=gauntlet-coordinator:50051
USER 10001:10001
WORKDIR /var/lib/gauntlet-worker
# The worker serves no port: it is healthy when it can reach its coordinator, which is what it
# needs to receive work. (Kubernetes ignores this; the DaemonSet has no liveness probe on purpose.)
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "grpcurl -plaintext -max-time 8 \"$GAUNTLET_COORDINATOR\" grpc.health.v1.Health/Check | grep -q '\"SERVING\"'"]
ENTRYPOINT ["/opt/gauntlet/bin/worker"]
CMD ["--coordinator=gauntlet-coordinator:50051", "--gpus=auto", "--work_dir=/var/lib/gauntlet-worker", "--trainer=/opt/gauntlet/bin/trainer", "--data_root=/data"]
