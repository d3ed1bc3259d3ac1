#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

TEST(GrpcStatusTest, CodesAndMessagesRoundTrip) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const absl::Status bad = absl::InvalidArgumentError("line 3, column 5: model.d_model: must be > 0");
  const grpc::Status edge = ToGrpcStatus(bad);
  EXPECT_EQ(edge.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(edge.error_message(), bad.message());
  EXPECT_EQ(FromGrpcStatus(edge), bad);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "exp-9")).code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gauntlet
