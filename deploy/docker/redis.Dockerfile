# Redis for doumi's catalog cache, FROM the locally made Debian base (deploy/docker/base-image.sh).
# The build context is the directory base-image.sh prepares: redis.tar holds exactly the files that
# `apt-get install redis-server` added to the base root, so no network is needed at build time.
# With registry access, `redis:7` from Docker Hub is an equivalent drop-in.
ARG BASE_IMAGE=doumi-base:bookworm
FROM ${BASE_IMAGE}
ARG REDIS_VERSION=unknown
LABEL org.opencontainers.image.title="doumi-redis" \
      org.opencontainers.image.description="Debian bookworm redis-server ${REDIS_VERSION} for doumi's cache" \
      org.opencontainers.image.version="${REDIS_VERSION}"
ADD redis.tar /
WORKDIR /data
# The same non-root user as the services (created in doumi-base); numeric so runAsNonRoot can check it.
USER 10001:10001
EXPOSE 6379
ENTRYPOINT ["/usr/bin/redis-server"]
# A pure cache: no RDB/AOF persistence. No `bind`, so Redis listens on every address; with no password
# protected mode would refuse remote clients, so it is off (NetworkPolicy limits who can connect).
CMD ["--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/data"]
