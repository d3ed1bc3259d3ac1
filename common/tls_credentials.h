#ifndef GAUNTLET_COMMON_TLS_CREDENTIALS_H_
#define GAUNTLET_COMMON_TLS_CREDENTIALS_H_

// gRPC credentials from PEM files named by the --tls_* flags that the coordinator, the worker
// and the CLI share. Empty paths mean plaintext (the default, meant for loopback). Errors name
// the flag and the file, so a misconfigured deployment fails at start-up instead of at the
// first handshake.

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace gauntlet {

struct ServerTlsFiles {
  std::string cert;       // --tls_cert: the server's certificate chain
  std::string key;        // --tls_key: its private key
  std::string client_ca;  // --tls_client_ca: if set, clients must present a cert it signed
};

struct ClientTlsFiles {
  std::string ca;    // --tls_ca: roots that verify the coordinator's certificate
  std::string cert;  // --tls_cert: client certificate, for a coordinator that asks for one
  std::string key;   // --tls_key: its private key
};

// Plaintext when every path is empty; TLS (mutual TLS when client_ca is set) otherwise.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsFiles& files);

// Plaintext when every path is empty; TLS verified against `ca` otherwise.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientTlsFiles& files);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_TLS_CREDENTIALS_H_
