#include "common/posix_fs.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

std::string TempDir() {
  std::string templ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR")
                                                             : "/tmp") + "/fsXXXXXX";
  return mkdtemp(templ.data());
}

void Touch(const std::string& path) { std::ofstream(path) << "x"; }

TEST(PosixFsTest, MakeListRenameAndRemoveATree) {
  const std::string root = TempDir();
  ASSERT_TRUE(MakeDirectories(root + "/a/b/c").ok());
  ASSERT_TRUE(MakeDirectories(root + "/a/b/c").ok());  // idempotent
  Touch(root + "/a/z.txt");
  Touch(root + "/a/b/c/y.txt");
  Touch(root + "/a/b/x.txt");
  ASSERT_EQ(symlink((root + "/a").c_str(), (root + "/a/b/loop").c_str()), 0);

  auto files = ListFilesRecursively(root + "/a");
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(*files, (std::vector<std::string>{root + "/a/b/c/y.txt", root + "/a/b/x.txt",
                                              root + "/a/z.txt"}));
  EXPECT_TRUE(IsDirectory(root + "/a/b"));
  EXPECT_FALSE(IsDirectory(root + "/a/z.txt"));
  EXPECT_EQ(ParentPath(root + "/a/z.txt"), root + "/a");
  EXPECT_EQ(ParentPath("z.txt"), "");

  ASSERT_TRUE(RenamePath(root + "/a/b", root + "/moved").ok());
  EXPECT_FALSE(PathExists(root + "/a/b"));
  ASSERT_TRUE(RemoveTree(root + "/moved").ok());
  EXPECT_FALSE(PathExists(root + "/moved"));
  EXPECT_TRUE(PathExists(root + "/a/z.txt"));  // the symlink's target survived
  EXPECT_TRUE(RemoveTree(root + "/missing").ok());
}

TEST(PosixFsTest, ErrorsNameThePath) {
  auto listed = ListDirectory("/nonexistent/dir");
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(listed.status().message().find("/nonexistent/dir"), std::string::npos);
  EXPECT_FALSE(RenamePath("/nonexistent/a", "/nonexistent/b").ok());
}

}  // namespace
}  // namespace gauntlet
