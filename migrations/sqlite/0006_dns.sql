-- Addresses a host-name entry resolved to at its last resolution.
CREATE TABLE resolved_addresses (
    network_id BIGINT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (network_id, address)
);
