#include "worker/line_tailer.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace gauntlet::worker {
namespace {

using Lines = std::vector<std::string>;

std::string Path(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

TEST(LineTailerTest, MissingFileReadsAsEmpty) {
  LineTailer tailer(Path("never-created"));
  auto lines = tailer.ReadLines();
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_TRUE(lines->empty());
}

TEST(LineTailerTest, ReturnsOnlyCompleteLinesAsTheyArrive) {
  const std::string path = Path("growing");
  LineTailer tailer(path);
  Append(path, "one\ntw");
  EXPECT_EQ(*tailer.ReadLines(), (Lines{"one"}));
  EXPECT_EQ(*tailer.ReadLines(), Lines{});
  Append(path, "o\n\nthree\n");
  EXPECT_EQ(*tailer.ReadLines(), (Lines{"two", "", "three"}));
  Append(path, "partial");
  EXPECT_EQ(*tailer.Drain(), (Lines{"partial"}));
  EXPECT_EQ(*tailer.Drain(), Lines{});
}

TEST(LineTailerTest, BoundsEachReadAndDrainsEverything) {
  const std::string path = Path("chatty");
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + "\n";
  Append(path, text);
  LineTailer tailer(path, /*max_bytes_per_read=*/64);
  auto first = tailer.ReadLines();
  ASSERT_TRUE(first.ok());
  EXPECT_LT(first->size(), 100u);
  EXPECT_TRUE(tailer.more());
  auto rest = tailer.Drain();
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(first->size() + rest->size(), 100u);
  EXPECT_EQ(rest->back(), "line 99");
}

}  // namespace
}  // namespace gauntlet::worker
