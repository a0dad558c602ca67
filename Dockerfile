# Latchkey and the example resource API, for docker-compose.yml. Build: docker build -t latchkey .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin latchkey \
 && cargo build --release --locked -p latchkey-verify --features actix --example resource_api

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/latchkey --create-home latchkey
COPY --from=build /src/target/release/latchkey /usr/local/bin/latchkey
COPY --from=build /src/target/release/examples/resource_api /usr/local/bin/resource_api
USER latchkey
WORKDIR /var/lib/latchkey
EXPOSE 8080
ENTRYPOINT ["latchkey"]
CMD ["serve"]
