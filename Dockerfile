# earshot container image: multi-stage on Debian bookworm.
#   docker build -t earshot .            (or ./build.ps1 -Docker)
#   docker run -p 8080:8080 earshot
# Mount your own config, and your own scripts beside the stock ones:
#   docker run -p 8080:8080 -v $PWD/earshot.cfg:/etc/earshot/earshot.cfg:ro \
#              -v $PWD/my_rules.lua:/usr/share/earshot/lua/my_rules.lua:ro earshot
# Reload after editing them: docker kill --signal HUP <container>
# Builds for linux/amd64 and linux/arm64 alike (nothing here is arch-specific).

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libwebsockets-dev libjansson-dev libconfig-dev liblua5.4-dev libssl-dev uthash-dev \
      libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake ./cmake
COPY src ./src
COPY plugins ./plugins
COPY lua ./lua
COPY config ./config
COPY web ./web
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEARSHOT_BUILD_TESTS=OFF \
      -DEARSHOT_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_SYSCONFDIR=/etc \
      -DCMAKE_INSTALL_LIBDIR=lib \
 && cmake --build build --parallel \
 && DESTDIR=/out cmake --install build \
 && rm -rf /out/usr/include /out/usr/share/pkgconfig /out/usr/share/earshot/systemd

FROM debian:bookworm-slim
# Runtime libraries only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libwebsockets17 libwebsockets-evlib-ev libev4 libjansson4 libconfig9 liblua5.4-0 \
      libhiredis0.14 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 earshot \
 && useradd --system --no-create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin earshot
# The binary, the plugins, the stock scripts, the web client and the stock config.
COPY --from=build /out/ /
# Numeric, so that orchestrators can verify it is not root.
USER 10001:10001
EXPOSE 8080
# bash's /dev/tcp keeps curl out of the image. It assumes plain HTTP on 8080:
# override it if your config changes server.port or turns on tls.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/earshot"]
CMD ["-c", "/etc/earshot/earshot.cfg"]
