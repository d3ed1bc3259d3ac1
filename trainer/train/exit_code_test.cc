#include "trainer/train/exit_code.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

namespace gauntlet {
namespace {

TEST(ExitCodeTest, TagSurvivesAndDefaultsToOther) {
  EXPECT_EQ(ExitCodeOf(absl::OkStatus()), ExitCode::kOk);
  EXPECT_EQ(ExitCodeOf(absl::InternalError("x")), ExitCode::kOther);
  absl::Status s = WithExitCode(absl::InvalidArgumentError("model.d_model: bad"), ExitCode::kBadSpec);
  EXPECT_EQ(ExitCodeOf(s), ExitCode::kBadSpec);
  EXPECT_EQ(s.message(), "model.d_model: bad");
  EXPECT_TRUE(WithExitCode(absl::OkStatus(), ExitCode::kBadData).ok());
}

TEST(ExitCodeTest, ClassifiesLibTorchExceptions) {
  try {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 2 GiB");
  } catch (const std::exception& e) {
    absl::Status s = StatusFromException(e, "step 3");
    EXPECT_EQ(ExitCodeOf(s), ExitCode::kOutOfMemory);
    EXPECT_EQ(s.message(), "step 3: CUDA out of memory. Tried to allocate 2 GiB");
  }
  try {
    TORCH_CHECK_WITH(DistNetworkError, false, "peer went away");
  } catch (const std::exception& e) {
    EXPECT_EQ(ExitCodeOf(StatusFromException(e, "step 1")), ExitCode::kDistributed);
  }
  try {
    TORCH_CHECK(false, "shape mismatch");
  } catch (const std::exception& e) {
    absl::Status s = StatusFromException(e, "step 1");
    EXPECT_EQ(ExitCodeOf(s), ExitCode::kOther);
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << "one-line reason";
  }
}

}  // namespace
}  // namespace gauntlet
