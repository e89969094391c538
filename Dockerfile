# sipwarden in a container. Run it next to Asterisk with the host's network, so the
# bans land in the host's nftables:
#
#   docker build -t sipwarden .
#   docker run -d --name sipwarden --network host --cap-add NET_ADMIN \
#     -v /var/log/asterisk:/var/log/asterisk:ro \
#     -v sipwarden-data:/var/lib/sipwarden \
#     -v /etc/asterisk:/etc/asterisk \
#     sipwarden
#
# The panel answers on http://127.0.0.1:8575 of the PBX only (reach it with
# `ssh -L 8575:127.0.0.1:8575 pbx`); to open it to the office LAN add
# `-e SIPWARDEN_LISTEN=<pbx LAN address>:8575` (see README "Exposing the panel").

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sipwarden

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables libcap2-bin curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 # nft may change the firewall when the container has NET_ADMIN, even as a plain user.
 && setcap cap_net_admin+ep /usr/sbin/nft \
 && useradd --system --home-dir /var/lib/sipwarden --shell /usr/sbin/nologin sipwarden \
 && install -d -o sipwarden -g sipwarden -m 0750 /var/lib/sipwarden \
 && install -d -m 0755 /etc/sipwarden
COPY --from=build /src/target/release/sipwarden /usr/local/bin/sipwarden
COPY sipwarden.example.toml /etc/sipwarden/sipwarden.toml
ENV SIPWARDEN_CONFIG=/etc/sipwarden/sipwarden.toml \
    SIPWARDEN_DATA_DIR=/var/lib/sipwarden \
    SIPWARDEN_LISTEN=127.0.0.1:8575 \
    SIPWARDEN_FIREWALL=nft
USER sipwarden
EXPOSE 8575
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD curl -fsS http://127.0.0.1:8575/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/sipwarden"]
CMD ["serve"]
