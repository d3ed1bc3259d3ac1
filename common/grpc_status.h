#ifndef GAUNTLET_COMMON_GRPC_STATUS_H_
#define GAUNTLET_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace gauntlet {

// absl::Status inside, grpc::Status at the edge: the two code spaces are the same canonical codes.
absl::Status FromGrpcStatus(const grpc::Status& status);
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_GRPC_STATUS_H_
