#include "trainer/data/tokenizer.h"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "trainer/data/atomic_file.h"
#include "trainer/data/sentencepiece_adapter.h"

namespace gauntlet {
namespace {

constexpr char kMagic[] = "gauntlet-tokenizer 1";
constexpr uint32_t kMaxCodePoint = 0x10FFFF;
// Python's surrogateescape: an undecodable byte b (>= 0x80) stands for code point 0xDC00 + b.
constexpr uint32_t kEscapeBase = 0xDC00;

// Decodes one character at text[i], returning its code point and advancing i.
uint32_t NextCodePoint(std::string_view text, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  uint32_t cp = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (rejects overlongs, surrogates)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  }
  bool valid = len > 0 && i + len <= text.size();
  for (int k = 1; valid && k < len; ++k) {
    const uint8_t b = byte(i + k);
    valid = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    cp = (cp << 6) | (b & 0x3F);
  }
  if (!valid) {
    ++i;
    return kEscapeBase + b0;
  }
  i += len;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp >= kEscapeBase + 0x80 && cp <= kEscapeBase + 0xFF) {
    out.push_back(static_cast<char>(cp - kEscapeBase));
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Printable(uint32_t cp) {
  if (cp >= 0x20 && cp < 0x7F) return absl::StrFormat("'%c' (U+%04X)", static_cast<char>(cp), cp);
  return absl::StrFormat("U+%04X", cp);
}

}  // namespace

Tokenizer::Tokenizer(Kind kind, std::vector<uint32_t> code_points)
    : kind_(kind), code_points_(std::move(code_points)) {
  if (kind_ == Kind::kChar && !code_points_.empty()) {
    id_of_.assign(code_points_.back() + 1, -1);
    for (size_t id = 0; id < code_points_.size(); ++id) {
      id_of_[code_points_[id]] = static_cast<int32_t>(id);
    }
  }
}

CharVocabularyBuilder::CharVocabularyBuilder() : seen_(kMaxCodePoint + 1, false) {}

void CharVocabularyBuilder::Add(std::string_view text) {
  for (size_t i = 0; i < text.size();) seen_[NextCodePoint(text, i)] = true;
}

Tokenizer CharVocabularyBuilder::Build() const {
  std::vector<uint32_t> code_points;
  for (uint32_t cp = 0; cp <= kMaxCodePoint; ++cp) {
    if (seen_[cp]) code_points.push_back(cp);
  }
  return Tokenizer(Tokenizer::Kind::kChar, std::move(code_points));
}

Tokenizer Tokenizer::Char(std::string_view corpus) {
  CharVocabularyBuilder builder;
  builder.Add(corpus);
  return builder.Build();
}

Tokenizer Tokenizer::Byte() { return Tokenizer(Kind::kByte, {}); }

absl::StatusOr<Tokenizer> Tokenizer::TrainSubword(const std::vector<std::string>& lines,
                                                  const SubwordOptions& options) {
  if (options.model_type != "bpe" && options.model_type != "unigram") {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.tokenizer: subword model must be bpe or unigram, got ", options.model_type));
  }
  if (lines.empty()) {
    return absl::InvalidArgumentError("data.tokenizer: no text to train the subword model on");
  }
  // Exact round trip and chunk-independent encoding (a piece never spans '\n'), reproducible.
  const std::vector<std::pair<std::string, std::string>> args = {
      {"model_type", options.model_type},
      {"vocab_size", absl::StrCat(options.vocab_size)},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"byte_fallback", "true"},
      {"character_coverage", "0.9999"},
      {"max_sentence_length", "16384"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      // Fixed, not the machine's core count: the model records it, and the same sample must give
      // the same model bytes (hence the same cache keys) on every machine.
      {"num_threads", "4"},
      {"unk_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  std::string model, error;
  if (!spm::Train(lines, args, &model, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("data.vocab_size: SentencePiece ",
                                                   options.model_type, " training with vocab_size ",
                                                   options.vocab_size, " failed: ", error));
  }
  return FromSentencePieceModel(std::move(model));
}

absl::StatusOr<Tokenizer> Tokenizer::FromSentencePieceModel(std::string model_proto) {
  std::string error;
  std::shared_ptr<const spm::Model> processor = spm::Model::Load(model_proto, &error);
  if (processor == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("not a SentencePiece model: ", error));
  }
  Tokenizer tokenizer(Kind::kSubword, {});
  tokenizer.model_proto_ = std::move(model_proto);
  tokenizer.eos_id_ = processor->eos_id();
  tokenizer.processor_ = std::move(processor);
  return tokenizer;
}

absl::StatusOr<Tokenizer::Kind> Tokenizer::ParseKind(std::string_view name) {
  if (name.empty() || name == "char") return Kind::kChar;
  if (name == "byte") return Kind::kByte;
  if (name == "bpe" || name == "unigram") return Kind::kSubword;
  return absl::InvalidArgumentError(
      absl::StrCat("data.tokenizer: must be \"char\", \"byte\", \"bpe\" or \"unigram\", got \"",
                   std::string(name), "\""));
}

std::string_view Tokenizer::kind_name() const {
  switch (kind_) {
    case Kind::kChar:
      return "char";
    case Kind::kByte:
      return "byte";
    case Kind::kSubword:
      break;
  }
  return "subword";
}

int64_t Tokenizer::vocab_size() const {
  if (kind_ == Kind::kSubword) return processor_->size();
  return kind_ == Kind::kByte ? 256 : static_cast<int64_t>(code_points_.size());
}

absl::Status Tokenizer::EncodeStream(
    std::string_view text, absl::FunctionRef<void(const uint32_t* ids, size_t n)> sink) const {
  if (kind_ == Kind::kSubword) {
    // SentencePiece's cost grows with its input, so encode line-aligned pieces of ~64 KiB. No
    // piece spans '\n' (the model never saw one), so the ids are those of the whole text.
    constexpr size_t kChunk = 64 << 10;
    std::vector<int> ids;
    std::vector<uint32_t> block;
    for (size_t begin = 0; begin < text.size();) {
      size_t end = std::min(text.size(), begin + kChunk);
      if (end < text.size()) {
        const size_t newline = text.rfind('\n', end - 1);
        if (newline != std::string_view::npos && newline >= begin) end = newline + 1;
      }
      std::string error;
      if (!processor_->Encode(text.substr(begin, end - begin), &ids, &error)) {
        return absl::InternalError(absl::StrCat("SentencePiece: ", error));
      }
      block.assign(ids.begin(), ids.end());
      if (!block.empty()) sink(block.data(), block.size());
      begin = end;
    }
    return absl::OkStatus();
  }
  constexpr size_t kBlock = 4096;
  uint32_t block[kBlock];
  size_t n = 0;
  for (size_t i = 0; i < text.size();) {
    uint32_t id;
    if (kind_ == Kind::kByte) {
      id = static_cast<uint8_t>(text[i++]);
    } else {
      const size_t at = i;
      const uint32_t cp = NextCodePoint(text, i);
      if (cp >= id_of_.size() || id_of_[cp] < 0) {
        return absl::InvalidArgumentError(absl::StrCat("character ", Printable(cp), " at byte ", at,
                                                       " is not in the char vocabulary (",
                                                       vocab_size(), " characters)"));
      }
      id = static_cast<uint32_t>(id_of_[cp]);
    }
    block[n++] = id;
    if (n == kBlock) {
      sink(block, n);
      n = 0;
    }
  }
  if (n > 0) sink(block, n);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<uint32_t> ids;
  ids.reserve(text.size());
  absl::Status status = EncodeStream(
      text, [&](const uint32_t* block, size_t n) { ids.insert(ids.end(), block, block + n); });
  if (!status.ok()) return status;
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<uint32_t>& ids) const {
  if (kind_ == Kind::kSubword) {
    std::vector<int> pieces;
    pieces.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= vocab_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", ids[i], " at index ", i, " is >= vocab_size ", vocab_size()));
      }
      pieces.push_back(static_cast<int>(ids[i]));
    }
    std::string text;
    std::string error;
    if (!processor_->Decode(pieces, &text, &error)) {
      return absl::InternalError(absl::StrCat("SentencePiece: ", error));
    }
    return text;
  }
  std::string text;
  text.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", ids[i], " at index ", i, " is >= vocab_size ", vocab_size()));
    }
    if (kind_ == Kind::kByte) {
      text.push_back(static_cast<char>(ids[i]));
    } else {
      AppendUtf8(code_points_[ids[i]], text);
    }
  }
  return text;
}

std::string Tokenizer::Serialize() const {
  if (kind_ == Kind::kSubword) {
    return absl::StrCat(kMagic, "\nkind subword\nvocab_size ", vocab_size(), "\nmodel_bytes ",
                        model_proto_.size(), "\n", model_proto_);
  }
  std::string out = absl::StrCat(kMagic, "\nkind ", std::string(kind_name()), "\nvocab_size ",
                                 vocab_size(), "\n");
  for (uint32_t cp : code_points_) absl::StrAppendFormat(&out, "%x\n", cp);
  return out;
}

absl::StatusOr<Tokenizer> Tokenizer::Deserialize(std::string_view text) {
  const std::string subword_head = absl::StrCat(kMagic, "\nkind subword\n");
  if (text.substr(0, subword_head.size()) == subword_head) {
    // "vocab_size N\nmodel_bytes M\n" then M raw bytes.
    std::string_view rest = text.substr(subword_head.size());
    int64_t size = 0, bytes = 0;
    const size_t l1 = rest.find('\n');
    const size_t l2 = l1 == std::string_view::npos ? l1 : rest.find('\n', l1 + 1);
    absl::string_view size_line(rest.data(), l1 == std::string_view::npos ? 0 : l1);
    absl::string_view bytes_line =
        l2 == std::string_view::npos ? absl::string_view()
                                     : absl::string_view(rest.data() + l1 + 1, l2 - l1 - 1);
    if (l2 == std::string_view::npos || !absl::ConsumePrefix(&size_line, "vocab_size ") ||
        !absl::SimpleAtoi(size_line, &size) || !absl::ConsumePrefix(&bytes_line, "model_bytes ") ||
        !absl::SimpleAtoi(bytes_line, &bytes) ||
        static_cast<int64_t>(rest.size() - l2 - 1) != bytes) {
      return absl::InvalidArgumentError(
          "malformed tokenizer file: a subword tokenizer needs vocab_size, model_bytes and the "
          "model");
    }
    absl::StatusOr<Tokenizer> tokenizer =
        FromSentencePieceModel(std::string(rest.substr(l2 + 1)));
    if (!tokenizer.ok()) return tokenizer.status();
    if (tokenizer->vocab_size() != size) {
      return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer file: vocab_size ", size,
                                                     " but the model has ",
                                                     tokenizer->vocab_size(), " pieces"));
    }
    return tokenizer;
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(text.data(), text.size()), '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  const auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer file: ", why));
  };
  if (lines.size() < 3 || lines[0] != kMagic)
    return bad(absl::StrCat("first line must be \"", kMagic, "\""));
  absl::string_view kind_name = lines[1];
  if (!absl::ConsumePrefix(&kind_name, "kind "))
    return bad(std::string("line 2 must be \"kind <char|byte>\""));
  absl::StatusOr<Kind> kind = ParseKind(std::string_view(kind_name.data(), kind_name.size()));
  if (!kind.ok() || kind_name.empty() || *kind == Kind::kSubword) return bad(absl::StrCat("unknown kind \"", kind_name, "\""));
  absl::string_view size_text = lines[2];
  int64_t size = 0;
  if (!absl::ConsumePrefix(&size_text, "vocab_size ") || !absl::SimpleAtoi(size_text, &size)) {
    return bad("line 3 must be \"vocab_size <n>\"");
  }
  if (*kind == Kind::kByte) {
    if (size != 256 || lines.size() != 3)
      return bad("a byte tokenizer has vocab_size 256 and no entries");
    return Byte();
  }
  if (size < 1 || static_cast<int64_t>(lines.size()) - 3 != size) {
    return bad(absl::StrCat("vocab_size ", size, " but ", lines.size() - 3, " entries"));
  }
  std::vector<uint32_t> code_points;
  code_points.reserve(size);
  for (size_t i = 3; i < lines.size(); ++i) {
    uint32_t cp = 0;
    if (!absl::SimpleHexAtoi(lines[i], &cp) || cp > kMaxCodePoint ||
        (!code_points.empty() && cp <= code_points.back())) {
      return bad(absl::StrCat("line ", i + 1, " \"", lines[i],
                              "\" is not a code point above the previous one"));
    }
    code_points.push_back(cp);
  }
  return Tokenizer(Kind::kChar, std::move(code_points));
}

absl::Status Tokenizer::Save(const std::string& path) const {
  return WriteFileAtomically(path, Serialize());
}

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  absl::StatusOr<Tokenizer> tokenizer = Deserialize(contents.str());
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

}  // namespace gauntlet
