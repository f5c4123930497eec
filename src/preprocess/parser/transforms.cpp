// What the record parser does to a field after coercion (transforms.hpp).
//
// read_field runs for every field of every event: the value transforms and the checks it calls
// live in this file, so that the compiler can inline them into it.

#include "transforms.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "sluice/core/sha256.hpp"

namespace sluice::parser {

namespace {

// min/max and allowed, on the final value.
std::optional<std::string> check(const field_config& f, const value& v) {
    if (std::holds_alternative<std::monostate>(v)) return std::nullopt;
    if (const auto* i = std::get_if<std::int64_t>(&v); i && f.type == field_type::int64) {
        if (f.min && static_cast<double>(*i) < *f.min)
            return std::to_string(*i) + " is below the minimum " + number_text(*f.min);
        if (f.max && static_cast<double>(*i) > *f.max)
            return std::to_string(*i) + " is above the maximum " + number_text(*f.max);
    } else if (const auto* d = std::get_if<double>(&v)) {
        if (f.min && *d < *f.min) return number_text(*d) + " is below the minimum " + number_text(*f.min);
        if (f.max && *d > *f.max) return number_text(*d) + " is above the maximum " + number_text(*f.max);
    }
    if (!f.allowed.empty() &&
        std::none_of(f.allowed.begin(), f.allowed.end(), [&](const value& a) { return same(a, v); }))
        return value_text(v) + " is not one of the allowed values " + list_text(f.allowed);
    return std::nullopt;
}

void apply_value_transform(const transform_config& t, value& v) {
    switch (t.op) {
        case transform_op::set_default:
            if (std::holds_alternative<std::monostate>(v)) v = t.default_value;
            return;
        case transform_op::clamp: {
            if (std::holds_alternative<std::monostate>(v)) return;
            const bool was_int = std::holds_alternative<std::int64_t>(v);
            bool below = false, above = false;
            if (!std::holds_alternative<std::monostate>(t.clamp_min)) {
                const auto c = compare(v, t.clamp_min);
                below = c && *c < 0;
            }
            if (!below && !std::holds_alternative<std::monostate>(t.clamp_max)) {
                const auto c = compare(v, t.clamp_max);
                above = c && *c > 0;
            }
            if (!below && !above) return;
            const value& bound = below ? t.clamp_min : t.clamp_max;
            // The loader gives the bounds the field's type; keep the type for a config built by hand.
            if (const auto* d = std::get_if<double>(&bound); d && was_int)
                v = static_cast<std::int64_t>(below ? std::ceil(*d) : std::floor(*d));
            else if (const auto* i = std::get_if<std::int64_t>(&bound); i && !was_int)
                v = static_cast<double>(*i);
            else
                v = bound;
            return;
        }
        case transform_op::lower:
            if (auto* s = std::get_if<std::string>(&v)) std::transform(s->begin(), s->end(), s->begin(), ascii_lower);
            return;
        case transform_op::upper:
            if (auto* s = std::get_if<std::string>(&v)) std::transform(s->begin(), s->end(), s->begin(), ascii_upper);
            return;
        case transform_op::trim:
            if (auto* s = std::get_if<std::string>(&v)) *s = std::string(trim_view(*s));
            return;
        case transform_op::hash:
            if (auto* s = std::get_if<std::string>(&v)) *s = sha256_hex(t.salt + *s);
            return;
        case transform_op::rename:
        case transform_op::cast:
        case transform_op::drop:
        case transform_op::filter:
            return;  // not value transforms: handled by the plan
    }
}

}  // namespace

std::variant<value, std::string> read_field(const field_config& f, const field_plan& plan, const json* raw) {
    value v;
    if (raw == nullptr || raw->is_null()) {
        if (f.required) return "field '" + f.name + "' is required";
        v = f.default_value;
    } else {
        auto r = plan.cast ? cast_value(f.type, *raw) : coerce(f.type, *raw);
        if (auto* e = std::get_if<coerce_error>(&r))
            return "field '" + f.name + "' (" + to_string(f.type) + "): " + e->reason;
        v = std::move(std::get<value>(r));
    }
    for (const auto& t : plan.steps) apply_value_transform(t, v);
    if (auto complaint = check(f, v)) return "field '" + f.name + "' (" + to_string(f.type) + "): " + *complaint;
    return v;
}

const char* condition_text(filter_op c) {
    switch (c) {
        case filter_op::equals:
            return "=";
        case filter_op::not_equals:
            return "!=";
        case filter_op::in:
            return "in";
        case filter_op::not_in:
            return "not in";
        case filter_op::gt:
            return ">";
        case filter_op::gte:
            return ">=";
        case filter_op::lt:
            return "<";
        case filter_op::lte:
            return "<=";
    }
    return "?";
}

bool satisfies(const value& v, filter_op c, const std::vector<value>& operands) {
    const auto any_same = [&] {
        return std::any_of(operands.begin(), operands.end(), [&](const value& o) { return same(v, o); });
    };
    if (c == filter_op::in) return any_same();
    if (c == filter_op::not_in) return !any_same();
    if (operands.empty()) return false;
    const value& o = operands.front();
    if (c == filter_op::equals) return same(v, o);
    if (c == filter_op::not_equals) return !same(v, o);
    if (std::holds_alternative<std::monostate>(v)) return false;  // null is not ordered
    const auto r = compare(v, o);
    if (!r) return false;
    switch (c) {
        case filter_op::gt:
            return *r > 0;
        case filter_op::gte:
            return *r >= 0;
        case filter_op::lt:
            return *r < 0;
        case filter_op::lte:
            return *r <= 0;
        default:
            return false;
    }
}

}  // namespace sluice::parser
