#pragma once
// What the record parser does to a field after coercion: its value transforms (default, clamp,
// lower, upper, trim, hash), its checks (min/max, allowed) on the final value, and the filters
// that decide on it. The rules are in record_parser.hpp.
//
// Pure functions of their arguments: any preprocess worker calls them at once.

#include <string>
#include <variant>
#include <vector>

#include "coercion.hpp"
#include "plan.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"

namespace sluice::parser {

/// Reads one field from its raw value (null when absent): cast or coercion, the value
/// transforms, the checks. The error names the field.
std::variant<value, std::string> read_field(const field_config& f, const field_plan& plan, const json* raw);

/// A filter's operator as its skip reason writes it: "=", "not in", ...
const char* condition_text(filter_op c);

/// True when the value passes the filter. Comparisons with null are false except not_equals and
/// not_in (and equals null).
bool satisfies(const value& v, filter_op c, const std::vector<value>& operands);

}  // namespace sluice::parser
