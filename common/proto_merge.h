#ifndef GAUNTLET_COMMON_PROTO_MERGE_H_
#define GAUNTLET_COMMON_PROTO_MERGE_H_

#include "google/protobuf/message.h"

namespace gauntlet {

// Merges the fields set in `overrides` into `target`: singular message fields merge recursively,
// scalars and oneof members replace (setting one oneof member clears the others), and repeated
// and map fields REPLACE the target's list. (Message::MergeFrom appends lists, which would turn a
// variant's `include_suffixes` or `layer_types` into base + variant.) Both must be the same type.
void MergeOverrides(const google::protobuf::Message& overrides, google::protobuf::Message* target);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_PROTO_MERGE_H_
