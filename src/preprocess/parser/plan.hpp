#pragma once
// The compiled form of a feature set, built once by the record_parser's constructor: sources as
// JSON pointer tokens, the transforms grouped by the field they work on, and what the fast path
// needs (the members to look for). parse() only walks the event along it.
//
// A plan is immutable after compile(): every preprocess worker reads it at once.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "coercion.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/preprocess/record_parser.hpp"

namespace sluice::parser {

/// A JSON pointer as its reference tokens (RFC 6901, "~1" and "~0" decoded).
using tokens = std::vector<std::string>;

struct field_plan {
    tokens source;
    bool cast = false;                    // a cast transform converts the raw value leniently
    std::vector<transform_config> steps;  // default, clamp, lower, upper, trim, hash in file order
    bool drop = false;
};

struct filter_plan {
    std::size_t transform_index = 0;  // in the set's transforms, for the reason
    std::size_t field = 0;
    filter_op condition = filter_op::equals;
    std::vector<value> operands;
};

}  // namespace sluice::parser

namespace sluice {

struct record_parser::set_plan {
    std::vector<std::pair<std::string, std::string>> renames;  // from → to, in file order
    parser::tokens key;
    parser::tokens event_time;
    std::vector<parser::field_plan> fields;
    std::vector<parser::filter_plan> filters;
    std::vector<std::size_t> filter_fields;  // fields read before the filters, each once
    // The fast path (parse_members) serves a set with no renames whose fields, key and event time
    // are each one top-level member. members: those names, each once, the key's and the event
    // time's first; slot: for each read (field i is i, then the key, then the event time), the
    // index of its member.
    bool fast = false;
    std::vector<std::string> members;
    std::vector<std::size_t> slot;
};

}  // namespace sluice

namespace sluice::parser {

using set_plan = record_parser::set_plan;

/// The reads of a set: field i is read i, then the key, then the event time.
inline std::size_t key_read(const set_plan& plan) { return plan.fields.size(); }
inline std::size_t time_read(const set_plan& plan) { return plan.fields.size() + 1; }

inline const tokens& path_of(const set_plan& plan, std::size_t read) {
    if (read == key_read(plan)) return plan.key;
    if (read == time_read(plan)) return plan.event_time;
    return plan.fields[read].source;
}

/// Compiles a feature set; throws std::invalid_argument for a config the loader would have
/// refused (an invalid JSON pointer, a transform naming an undeclared field).
set_plan compile(const feature_set_config& set);

/// The value a pointer names in the event, or null when the event has nothing there.
const json* find_at(const json& doc, const tokens& path);

}  // namespace sluice::parser
