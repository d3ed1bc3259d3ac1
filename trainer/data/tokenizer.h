#ifndef GAUNTLET_TRAINER_DATA_TOKENIZER_H_
#define GAUNTLET_TRAINER_DATA_TOKENIZER_H_

// Character-, byte- and subword-level (SentencePiece) tokenizers. Torch-free.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet::spm {
class Model;
}  // namespace gauntlet::spm

namespace gauntlet {

// How a SentencePiece model is trained (Tokenizer::TrainSubword).
struct SubwordOptions {
  std::string model_type = "bpe";  // "bpe" or "unigram"
  int vocab_size = 8192;
};

class Tokenizer;

// The char vocabulary of a corpus seen in pieces. Each piece must hold whole characters (a piece
// cut inside a UTF-8 sequence would count its bytes as escapes).
class CharVocabularyBuilder {
 public:
  CharVocabularyBuilder();
  void Add(std::string_view text);
  Tokenizer Build() const;

 private:
  std::vector<bool> seen_;  // by code point
};

class Tokenizer {
 public:
  enum class Kind { kChar, kByte, kSubword };

  // Character-level: the vocabulary is the sorted set of the corpus's Unicode code points
  // (Python's sorted(set(text)), so ids match the reference scripts). The corpus is decoded as
  // UTF-8; a byte that is not part of a valid sequence becomes code point U+DC00 + byte (Python's
  // "surrogateescape"), so any byte string round-trips.
  static Tokenizer Char(std::string_view corpus);
  // Byte-level: V = 256, id = byte value. Works for any corpus.
  static Tokenizer Byte();
  // SentencePiece, trained on `lines` (a sample of the corpus; none may contain '\n'). The model
  // round-trips any valid UTF-8 text exactly: identity normalisation, no dummy prefix, whitespace
  // kept, unknown characters as byte pieces. Ids: 0 <unk>, 1 </s> (end of document), then the
  // 256 byte pieces, then the learned pieces. Deterministic: the same lines and options give the
  // same model bytes. InvalidArgument naming data.vocab_size when SentencePiece refuses the size.
  static absl::StatusOr<Tokenizer> TrainSubword(const std::vector<std::string>& lines,
                                                const SubwordOptions& options);
  // A serialized SentencePiece ModelProto (the bytes of a .model file).
  static absl::StatusOr<Tokenizer> FromSentencePieceModel(std::string model_proto);
  // "char", "byte", "bpe" or "unigram" (the v1::DataSpec.tokenizer spelling; "" means "char").
  static absl::StatusOr<Kind> ParseKind(std::string_view name);

  Kind kind() const { return kind_; }
  // "char", "byte" or "subword".
  std::string_view kind_name() const;
  int64_t vocab_size() const;
  // The end-of-document id written between documents, or -1 (char and byte have none).
  int64_t eos_id() const { return eos_id_; }
  // The SentencePiece model bytes (empty unless kind() == kSubword).
  const std::string& model_proto() const { return model_proto_; }

  // Encodes text into ids. InvalidArgument (naming the character and its byte offset) when a
  // character tokenizer meets a character outside its vocabulary. Thread-safe.
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
    return kind_ == other.kind_ && code_points_ == other.code_points_ &&
           model_proto_ == other.model_proto_;
  }

 private:
  friend class CharVocabularyBuilder;
  Tokenizer(Kind kind, std::vector<uint32_t> code_points);

  Kind kind_;
  std::vector<uint32_t> code_points_;  // char: sorted code points, id = index; byte: empty
  std::vector<int32_t> id_of_;         // char: code point -> id, -1 when absent
  // kSubword: the model and its loaded processor (shared: copies are cheap, Encode is const).
  std::string model_proto_;
  std::shared_ptr<const spm::Model> processor_;
  int64_t eos_id_ = -1;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_TOKENIZER_H_
