#ifndef GAUNTLET_TRAINER_DATA_TOKENIZER_H_
#define GAUNTLET_TRAINER_DATA_TOKENIZER_H_

// Character- and byte-level tokenizers. Torch-free.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet {

class Tokenizer {
 public:
  enum class Kind { kChar, kByte };

  // Character-level: the vocabulary is the sorted set of the corpus's Unicode code points
  // (Python's sorted(set(text)), so ids match the reference scripts). The corpus is decoded as
  // UTF-8; a byte that is not part of a valid sequence becomes code point U+DC00 + byte (Python's
  // "surrogateescape"), so any byte string round-trips.
  static Tokenizer Char(std::string_view corpus);
  // Byte-level: V = 256, id = byte value. Works for any corpus.
  static Tokenizer Byte();
  // "char" or "byte" (the v1::DataSpec.tokenizer spelling; "" means "char").
  static absl::StatusOr<Kind> ParseKind(std::string_view name);

  Kind kind() const { return kind_; }
  std::string_view kind_name() const { return kind_ == Kind::kChar ? "char" : "byte"; }
  int64_t vocab_size() const;

  // Encodes text into ids. InvalidArgument (naming the character and its byte offset) when a
  // character tokenizer meets a character outside its vocabulary.
  absl::StatusOr<std::vector<uint32_t>> Encode(std::string_view text) const;
  // Same, handing ids to `sink` in blocks of at most a few thousand, so that a corpus of
  // gigabytes can be tokenized without materialising 4-byte ids for all of it.
  absl::Status EncodeStream(std::string_view text,
                            absl::FunctionRef<void(const uint32_t* ids, size_t n)> sink) const;
  // Decodes ids; InvalidArgument for an id >= vocab_size().
  absl::StatusOr<std::string> Decode(const std::vector<uint32_t>& ids) const;

  // Text form (see Save), so a token cache can carry its tokenizer in one file.
  std::string Serialize() const;
  static absl::StatusOr<Tokenizer> Deserialize(std::string_view text);

  // Writes the tokenizer to `path` (a small text file: kind, size, one hex code point a line),
  // atomically (temporary file + rename).
  absl::Status Save(const std::string& path) const;
  static absl::StatusOr<Tokenizer> Load(const std::string& path);

  bool operator==(const Tokenizer& other) const {
    return kind_ == other.kind_ && code_points_ == other.code_points_;
  }

 private:
  Tokenizer(Kind kind, std::vector<uint32_t> code_points);

  Kind kind_;
  std::vector<uint32_t> code_points_;  // char: sorted code points, id = index; byte: empty
  std::vector<int32_t> id_of_;         // char: code point -> id, -1 when absent
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_TOKENIZER_H_
