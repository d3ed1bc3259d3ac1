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
  EXPECT_EQ(*Tokenizer::ParseKind("bpe"), Tokenizer::Kind::kSubword);
  EXPECT_EQ(*Tokenizer::ParseKind("unigram"), Tokenizer::Kind::kSubword);
  EXPECT_THAT(Tokenizer::ParseKind("gpt2").status().message(), HasSubstr("data.tokenizer"));
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (nl > start) lines.push_back(text.substr(start, nl - start));
  }
  return lines;
}

class SubwordTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SubwordTest, TrainingIsDeterministicAndRoundTripsExactly) {
  const std::vector<std::string> lines = Lines(testing::WordText(100000, 3));
  SubwordOptions options;
  options.model_type = GetParam();
  options.vocab_size = 320;
  absl::StatusOr<Tokenizer> a = Tokenizer::TrainSubword(lines, options);
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<Tokenizer> b = Tokenizer::TrainSubword(lines, options);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(a->model_proto() == b->model_proto()) << "same sample, different model bytes";
  EXPECT_EQ(a->kind(), Tokenizer::Kind::kSubword);
  EXPECT_EQ(a->vocab_size(), 320);
  EXPECT_EQ(a->eos_id(), 1);

  // Exact round trip, whitespace, newlines, digits and unseen characters (byte fallback) included.
  const std::string text =
      "the kernel  returns\n\n\tindented value 12345 naïve 日本語 {x[0]}; \r\nend ";
  absl::StatusOr<std::vector<uint32_t>> ids = a->Encode(text);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*a->Decode(*ids), text);
  // Learned pieces compress the text well below the byte tokenizer's one token per byte.
  const std::string seen = testing::WordText(20000, 99);
  EXPECT_LT(a->Encode(seen)->size(), seen.size() * 7 / 10);

  // Serialize/Deserialize and Save/Load keep the model, hence the ids.
  absl::StatusOr<Tokenizer> copy = Tokenizer::Deserialize(a->Serialize());
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_TRUE(*copy == *a);
  EXPECT_EQ(*copy->Encode(text), *ids);
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(a->Save(dir + "/tok").ok());
  EXPECT_EQ(*Tokenizer::Load(dir + "/tok")->Encode(text), *ids);
}

INSTANTIATE_TEST_SUITE_P(Models, SubwordTest, ::testing::Values("bpe", "unigram"));

TEST(SubwordTest, EncodeStreamMatchesWholeTextAcrossChunks) {
  SubwordOptions options;
  options.vocab_size = 300;
  absl::StatusOr<Tokenizer> t = Tokenizer::TrainSubword(Lines(testing::WordText(50000, 5)), options);
  ASSERT_TRUE(t.ok()) << t.status();
  // > 64 KiB, so EncodeStream cuts it into line-aligned chunks.
  const std::string text = testing::WordText(300000, 6);
  std::vector<uint32_t> streamed;
  ASSERT_TRUE(t->EncodeStream(text, [&](const uint32_t* ids, size_t n) {
                 streamed.insert(streamed.end(), ids, ids + n);
               }).ok());
  EXPECT_EQ(*t->Decode(streamed), text);
  // Piece by piece (cut after newlines) gives the same ids as one call per line.
  std::vector<uint32_t> per_line;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::vector<uint32_t> ids = *t->Encode(text.substr(start, nl + 1 - start));
    per_line.insert(per_line.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(streamed, per_line);
}

TEST(SubwordTest, ErrorsNameTheField) {
  SubwordOptions options;
  options.vocab_size = 100;  // below the 256 byte pieces
  EXPECT_THAT(Tokenizer::TrainSubword(Lines(testing::WordText(5000, 1)), options).status().message(),
              HasSubstr("data.vocab_size"));
  options.model_type = "wordpiece";
  EXPECT_THAT(Tokenizer::TrainSubword({"a b"}, options).status().message(),
              HasSubstr("data.tokenizer"));
  EXPECT_FALSE(Tokenizer::FromSentencePieceModel("not a model").ok());
}

}  // namespace
}  // namespace gauntlet
