# One image for every J4 process: it builds the tree with the same
# scripts/install-deps.sh that developers and CI use, installs
# j4-distributor, j4-executor and the scenario plugins, and runs whichever
# the container's command names (j4-distributor by default). Configuration
# comes from the J4_* environment variables of docs/architecture.md; see
# docker-compose.yml for a whole cluster.

FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src

# Dependencies first, so that editing the sources does not redo them.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*

# Build out of the tree: a host build directory copied in with the sources
# must not be mistaken for ours.
COPY . /src
RUN cmake -S /src -B /opt/j4-build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DBUILD_TESTING=OFF \
 && cmake --build /opt/j4-build -j "$(nproc)" \
 && install -m 0755 /opt/j4-build/distributor/j4-distributor \
                    /opt/j4-build/executor/j4-executor /usr/local/bin/ \
 && install -d /usr/local/lib/j4/scenarios \
 && install -m 0644 /opt/j4-build/scenarios/*.so /usr/local/lib/j4/scenarios/ \
 && install -d /usr/local/share/j4/migrations \
 && install -m 0644 /src/migrations/*.sql /usr/local/share/j4/migrations/ \
 && useradd --system --no-create-home --shell /usr/sbin/nologin j4

ENV J4_PLUGIN_DIR=/usr/local/lib/j4/scenarios \
    J4_MIGRATIONS=/usr/local/share/j4/migrations \
    J4_LISTEN=0.0.0.0:8080
USER j4
EXPOSE 8080
CMD ["j4-distributor"]
