#pragma once
// The type a feature set declares for a field; it decides which alternative of `value` it holds.

namespace sluice {

enum class field_type { int64, float64, boolean, string, timestamp, json };

/// "int", "double", "bool", "string", "timestamp", "json".
const char* to_string(field_type t);

}  // namespace sluice
