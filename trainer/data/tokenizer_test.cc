#include "trainer/data/tokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/data/test_util.h"

namespace gauntlet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TokenizerTest, CharVocabularyIsTheSortedSetOfCharacters) {
  const Tokenizer tok = Tokenizer::Char("hello world\n");
  EXPECT_EQ(tok.kind(), Tokenizer::Kind::kChar);
  EXPECT_EQ(tok.vocab_size(), 9);  // \n space d e h l o r w
  absl::StatusOr<std::vector<uint32_t>> ids = tok.Encode("\n dehlorw");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8));
  absl::StatusOr<std::string> text = tok.Decode({4, 3, 5, 5, 6});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello");
}

TEST(TokenizerTest, CharCountsUnicodeCharactersNotBytes) {
  // é (2 bytes), € (3 bytes), 😀 (4 bytes): ids ordered by code point like Python's sorted(set()).
  const std::string text =
      "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
      "a";
  const Tokenizer tok = Tokenizer::Char(text);
  EXPECT_EQ(tok.vocab_size(), 4);
  absl::StatusOr<std::vector<uint32_t>> ids = tok.Encode(text);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(0, 1, 2, 3, 0));
  EXPECT_EQ(*tok.Decode(*ids), text);
}

TEST(TokenizerTest, InvalidUtf8BytesRoundTripAsEscapes) {
  // A lone continuation byte, a Latin-1 byte, an overlong encoding and a truncated sequence.
  const std::string text = std::string("ok\x80\xE9 \xC0\xAF!\xE2\x82", 10);
  const Tokenizer tok = Tokenizer::Char(text);
  absl::StatusOr<std::vector<uint32_t>> ids = tok.Encode(text);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->size(), 10u);  // every invalid byte is its own character
  EXPECT_EQ(*tok.Decode(*ids), text);
}

TEST(TokenizerTest, CharRejectsUnknownCharacterNamingIt) {
  const Tokenizer tok = Tokenizer::Char("abc");
  absl::StatusOr<std::vector<uint32_t>> ids = tok.Encode("abz");
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ids.status().message(), HasSubstr("'z'"));
  EXPECT_THAT(ids.status().message(), HasSubstr("byte 2"));
  EXPECT_FALSE(tok.Decode({3}).ok());
}

TEST(TokenizerTest, ByteTokenizerCoversEveryByte) {
  const Tokenizer tok = Tokenizer::Byte();
  EXPECT_EQ(tok.vocab_size(), 256);
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  absl::StatusOr<std::vector<uint32_t>> ids = tok.Encode(all);
  ASSERT_TRUE(ids.ok());
  for (int b = 0; b < 256; ++b) EXPECT_EQ((*ids)[b], static_cast<uint32_t>(b));
  EXPECT_EQ(*tok.Decode(*ids), all);
  EXPECT_FALSE(tok.Decode({256}).ok());
}

TEST(TokenizerTest, EncodeStreamDeliversEverythingInBlocks) {
  const std::string text = testing::RandomText(10000, 1, "abcdef");
  const Tokenizer tok = Tokenizer::Char(text);
  std::vector<uint32_t> streamed;
  int calls = 0;
  ASSERT_TRUE(tok.EncodeStream(text,
                               [&](const uint32_t* ids, size_t n) {
                                 ++calls;
                                 streamed.insert(streamed.end(), ids, ids + n);
                               })
                  .ok());
  EXPECT_GT(calls, 1);
  EXPECT_EQ(streamed, *tok.Encode(text));
}

TEST(TokenizerTest, SaveAndLoadRoundTrip) {
  const std::string dir = testing::MakeTempDir();
  const Tokenizer chars = Tokenizer::Char("The quick brown fox \xE2\x82\xAC\x80");
  ASSERT_TRUE(chars.Save(dir + "/tokenizer.txt").ok());
  absl::StatusOr<Tokenizer> loaded = Tokenizer::Load(dir + "/tokenizer.txt");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(*loaded == chars);
  EXPECT_EQ(loaded->vocab_size(), chars.vocab_size());

  ASSERT_TRUE(Tokenizer::Byte().Save(dir + "/byte.txt").ok());
  absl::StatusOr<Tokenizer> byte = Tokenizer::Load(dir + "/byte.txt");
  ASSERT_TRUE(byte.ok());
  EXPECT_EQ(byte->kind(), Tokenizer::Kind::kByte);
}

TEST(TokenizerTest, LoadRejectsMalformedFiles) {
  const std::string dir = testing::MakeTempDir();
  EXPECT_EQ(Tokenizer::Load(dir + "/missing.txt").status().code(), absl::StatusCode::kNotFound);
  testing::WriteFile(dir + "/bad.txt", "gauntlet-tokenizer 1\nkind char\nvocab_size 3\n61\n62\n");
  absl::StatusOr<Tokenizer> bad = Tokenizer::Load(dir + "/bad.txt");
  EXPECT_THAT(bad.status().message(), HasSubstr("vocab_size 3 but 2 entries"));
  EXPECT_THAT(bad.status().message(), HasSubstr(dir + "/bad.txt"));
  testing::WriteFile(dir + "/unsorted.txt",
                     "gauntlet-tokenizer 1\nkind char\nvocab_size 2\n62\n61\n");
  EXPECT_FALSE(Tokenizer::Load(dir + "/unsorted.txt").ok());
  testing::WriteFile(dir + "/kind.txt", "gauntlet-tokenizer 1\nkind bpe\nvocab_size 2\n");
  EXPECT_THAT(Tokenizer::Load(dir + "/kind.txt").status().message(), HasSubstr("bpe"));
}

TEST(TokenizerTest, ParseKindNamesTheField) {
  EXPECT_EQ(*Tokenizer::ParseKind(""), Tokenizer::Kind::kChar);
  EXPECT_EQ(*Tokenizer::ParseKind("byte"), Tokenizer::Kind::kByte);
  EXPECT_THAT(Tokenizer::ParseKind("bpe").status().message(), HasSubstr("data.tokenizer"));
}

}  // namespace
}  // namespace gauntlet
