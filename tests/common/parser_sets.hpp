#pragma once
// Feature sets the record parser's fast path (simdjson) serves, shared by the parser's unit tests
// and its fuzz target, and the change that keeps a set on the nlohmann path, so that both paths
// can be compared on the same input.

#include <string>

#include "sluice/config/config.hpp"

namespace sluice::testing_support {

// Every field type, with bounds, a default and a required field; each member read by one field.
inline constexpr const char* every_type_set =
    R"("key": "user_id", "event_time": "ts",
       "fields": {"c0": {"type": "int"}, "c1": {"type": "int", "min": 0, "max": 1000000},
                  "d0": {"type": "double"}, "d1": {"type": "double", "default": 1.5}, "b0": {"type": "bool"},
                  "s0": {"type": "string"}, "s1": {"type": "string", "required": true},
                  "t0": {"type": "timestamp"}, "j0": {"type": "json"}, "j1": {"type": "json"}})";

// Casts, value transforms, a drop and filters, with the Kafka timestamp as the event time fallback.
inline constexpr const char* transform_set =
    R"("key": "user_id", "event_time": "ts", "event_time_fallback": "kafka_timestamp",
       "fields": {"kind": {"type": "string"}, "n": {"type": "int"}, "x": {"type": "double", "max": 100},
                  "flag": {"type": "bool"}, "name": {"type": "string"}, "cs": {"type": "string"},
                  "ci": {"type": "int"}, "ct": {"type": "timestamp"}, "cb": {"type": "bool"},
                  "cd": {"type": "double"}, "tier": {"type": "int", "allowed": [1, 2, 3]}})";
inline constexpr const char* transform_list =
    R"({"op": "cast", "field": "cs", "to": "string"}, {"op": "cast", "field": "ci", "to": "int"},
       {"op": "cast", "field": "ct", "to": "timestamp"}, {"op": "cast", "field": "cb", "to": "bool"},
       {"op": "cast", "field": "cd", "to": "double"}, {"op": "trim", "field": "kind"},
       {"op": "lower", "field": "kind"}, {"op": "clamp", "field": "n", "min": 0, "max": 100},
       {"op": "hash", "field": "name", "salt": "s:"}, {"op": "default", "field": "x", "value": 0.5},
       {"op": "default", "field": "tier", "value": 2}, {"op": "drop", "field": "flag"},
       {"op": "filter", "field": "kind", "not_equals": "skip"}, {"op": "filter", "field": "n", "gte": 1})";

// The key and the event time are fields too (one member, several reads); the key as a pointer.
inline constexpr const char* shared_member_set =
    R"("key": "/user_id", "event_time": "ts",
       "fields": {"user_id": {"type": "string"}, "ts": {"type": "timestamp"}, "x": {"type": "json"},
                  "y": {"type": "string", "source": "/y"}})";

/// A config of one feature set "s" on topic "t": `members` are its keys after name and topic,
/// `transforms` the elements of its transform list.
inline std::string one_set_config(const std::string& members, const std::string& transforms = "") {
    return R"({"feature_sets": [{"name": "s", "topic": "t", )" + members + R"(, "transforms": [)" + transforms +
           "]}]}";
}

/// `c` with a rename of a member no event has appended to its first set: that changes nothing but
/// keeps the set off the fast path. It goes last, where the loader would refuse it but the parser
/// takes it, so that the other transforms keep their index (a skip's reason names it).
inline config on_the_nlohmann_path(config c) {
    transform_config rename;
    rename.op = transform_op::rename;
    rename.from = "never_sent";
    rename.to = "ts";
    c.feature_sets[0].transforms.push_back(rename);
    return c;
}

}  // namespace sluice::testing_support
