#include "common/proto_merge.h"

#include <vector>

namespace gauntlet {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void MergeOverrides(const Message& overrides, Message* target) {
  const Reflection& from = *overrides.GetReflection();
  const Reflection& to = *target->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  from.ListFields(overrides, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated()) {
      // Lists (and maps) replace: a variant states the whole list it wants.
      to.ClearField(target, field);
      for (int i = 0; i < from.FieldSize(overrides, field); ++i) {
        switch (field->cpp_type()) {
          case FieldDescriptor::CPPTYPE_INT32:
            to.AddInt32(target, field, from.GetRepeatedInt32(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_INT64:
            to.AddInt64(target, field, from.GetRepeatedInt64(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_UINT32:
            to.AddUInt32(target, field, from.GetRepeatedUInt32(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_UINT64:
            to.AddUInt64(target, field, from.GetRepeatedUInt64(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_DOUBLE:
            to.AddDouble(target, field, from.GetRepeatedDouble(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_FLOAT:
            to.AddFloat(target, field, from.GetRepeatedFloat(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_BOOL:
            to.AddBool(target, field, from.GetRepeatedBool(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_ENUM:
            to.AddEnumValue(target, field, from.GetRepeatedEnumValue(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_STRING:
            to.AddString(target, field, from.GetRepeatedString(overrides, field, i));
            break;
          case FieldDescriptor::CPPTYPE_MESSAGE:
            to.AddMessage(target, field)->CopyFrom(from.GetRepeatedMessage(overrides, field, i));
            break;
        }
      }
      continue;
    }
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        to.SetInt32(target, field, from.GetInt32(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        to.SetInt64(target, field, from.GetInt64(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        to.SetUInt32(target, field, from.GetUInt32(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        to.SetUInt64(target, field, from.GetUInt64(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        to.SetDouble(target, field, from.GetDouble(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        to.SetFloat(target, field, from.GetFloat(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        to.SetBool(target, field, from.GetBool(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        to.SetEnumValue(target, field, from.GetEnumValue(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        to.SetString(target, field, from.GetString(overrides, field));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        const Message& sub = from.GetMessage(overrides, field);
        // A oneof message member replaces rather than merges into a sibling member.
        if (field->real_containing_oneof() != nullptr && !to.HasField(*target, field)) {
          to.MutableMessage(target, field)->CopyFrom(sub);
        } else {
          MergeOverrides(sub, to.MutableMessage(target, field));
        }
        break;
      }
    }
  }
}

}  // namespace gauntlet
