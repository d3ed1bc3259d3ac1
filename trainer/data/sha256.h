#ifndef GAUNTLET_TRAINER_DATA_SHA256_H_
#define GAUNTLET_TRAINER_DATA_SHA256_H_

// SHA-256 (FIPS 180-4), used to key the token cache by corpus content. Written here because none
// of the mandated dependencies exposes a stable content hash (absl::Hash is seeded per process).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gauntlet {

class Sha256 {
 public:
  Sha256();
  // Feed bytes; may be called any number of times before Finish().
  void Update(std::string_view bytes);
  // The 32-byte digest. The object must not be updated afterwards.
  std::array<uint8_t, 32> Finish();
  // Finish() as 64 lowercase hex characters.
  std::string FinishHex();

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// One-shot convenience.
std::string Sha256Hex(std::string_view bytes);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_SHA256_H_
