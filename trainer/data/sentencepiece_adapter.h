#ifndef GAUNTLET_TRAINER_DATA_SENTENCEPIECE_ADAPTER_H_
#define GAUNTLET_TRAINER_DATA_SENTENCEPIECE_ADAPTER_H_

// SentencePiece behind a std-only interface. libsentencepiece is loaded through an embedded
// plugin (sentencepiece_plugin.cc) with deep binding, because Debian's build exports a bundled
// protobuf-lite that collides with the process's libprotobuf; see the plugin for details.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gauntlet {
namespace spm {

// Trains a model on `lines` with SentencePieceTrainer's named options; false with `error` set on
// failure (including a plugin that cannot be loaded).
bool Train(const std::vector<std::string>& lines,
           const std::vector<std::pair<std::string, std::string>>& options, std::string* model,
           std::string* error);

// A loaded model. Encode and Decode are const and thread-safe.
class Model {
 public:
  static std::shared_ptr<const Model> Load(const std::string& model_proto, std::string* error);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const;
  bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const;
  int size() const { return size_; }
  int eos_id() const { return eos_id_; }

 private:
  explicit Model(void* handle);
  void* handle_;
  int size_;
  int eos_id_;
};

}  // namespace spm
}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_SENTENCEPIECE_ADAPTER_H_
