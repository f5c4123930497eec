#pragma once
// Steps 2 to 4 of record_parser::parse (the filters, the key and event time, the fields) on an
// event either parser has read: the record, a skip or a dead letter. The rules are in
// record_parser.hpp.
//
// build() is a template over how a read's raw value is found, so that the fast path and the
// nlohmann path each get it inlined into their loop. It touches only its arguments: any
// preprocess worker runs it at once.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "coercion.hpp"
#include "plan.hpp"
#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "transforms.hpp"

namespace sluice::parser {

constexpr std::size_t max_key_bytes = 1024;
constexpr std::int64_t max_event_time_ms = 253402300799999;  // 9999-12-31T23:59:59.999Z

/// The dead letter of a message, its reason made valid UTF-8.
dead_letter make_dead_letter(const raw_message& msg, std::string error, std::int64_t now,
                             dead_letter_reason reason = dead_letter_reason::invalid);

/// at(read) is the raw value of a read (numbered as set_plan::slot), null when absent.
template <class Find>
processed build(const raw_message& msg, const feature_set_config& set, const set_plan& plan, const Find& at,
                std::int64_t now) {
    // 2. The filters decide first, on their fields' final values.
    std::vector<std::optional<value>> values(set.fields.size());
    for (const std::size_t fi : plan.filter_fields) {
        auto v = read_field(set.fields[fi], plan.fields[fi], at(fi));
        if (auto* e = std::get_if<std::string>(&v)) return make_dead_letter(msg, std::move(*e), now);
        values[fi] = std::move(std::get<value>(v));
    }
    for (const auto& f : plan.filters) {
        const value& v = *values[f.field];
        if (satisfies(v, f.condition, f.operands)) continue;
        std::string operand = f.condition == filter_op::in || f.condition == filter_op::not_in
                                  ? "[" + list_text(f.operands) + "]"
                                  : (f.operands.empty() ? "null" : value_text(f.operands.front()));
        return skipped{msg.set_index, msg.source,
                       sanitize_utf8("filtered out by transforms[" + std::to_string(f.transform_index) + "] (" +
                                     set.fields[f.field].name + " " + condition_text(f.condition) + " " + operand +
                                     "): got " + value_text(v))};
    }

    record r;
    r.set_index = msg.set_index;
    r.source = msg.source;
    r.ingested_at_ms = now;

    // 3. Key and event time.
    const json* key = at(key_read(plan));
    if (key == nullptr || key->is_null())
        return make_dead_letter(msg, "key field '" + set.key_field + "' is missing", now);
    if (key->is_string()) {
        r.key = key->get<std::string>();
    } else if (key->is_number_integer()) {
        r.key = key->dump();
    } else {
        return make_dead_letter(msg, "key field '" + set.key_field + "': expected a string, got " + describe(*key),
                                now);
    }
    if (r.key.find('\0') != std::string::npos)
        return make_dead_letter(msg, "key field '" + set.key_field + "' contains a NUL character", now);
    if (r.key.empty()) return make_dead_letter(msg, "key field '" + set.key_field + "' is empty", now);
    if (r.key.size() > max_key_bytes)
        return make_dead_letter(msg, "key field '" + set.key_field + "' is longer than 1024 bytes", now);

    const json* time = at(time_read(plan));
    if (time == nullptr || time->is_null()) {
        if (set.event_time_fallback != time_fallback::kafka_timestamp)
            return make_dead_letter(msg, "event time field '" + set.event_time_field + "' is missing", now);
        if (msg.kafka_timestamp_ms < 0 || msg.kafka_timestamp_ms > max_event_time_ms)
            return make_dead_letter(msg,
                                    "event time field '" + set.event_time_field +
                                        "' is missing and the message has no Kafka timestamp to fall back on",
                                    now);
        r.event_time_ms = msg.kafka_timestamp_ms;
    } else {
        auto t = to_timestamp(*time);
        if (auto* e = std::get_if<coerce_error>(&t))
            return make_dead_letter(msg, "event time field '" + set.event_time_field + "': " + e->reason, now);
        r.event_time_ms = std::get<std::int64_t>(t);
    }

    // 4. The other fields, then the drops.
    r.values.reserve(set.fields.size());
    for (std::size_t i = 0; i < set.fields.size(); ++i) {
        if (values[i]) {
            r.values.push_back(std::move(*values[i]));
            continue;
        }
        auto v = read_field(set.fields[i], plan.fields[i], at(i));
        if (auto* e = std::get_if<std::string>(&v)) return make_dead_letter(msg, std::move(*e), now);
        r.values.push_back(std::move(std::get<value>(v)));
    }
    for (std::size_t i = 0; i < set.fields.size(); ++i)
        if (plan.fields[i].drop) r.values[i] = std::monostate{};
    return r;
}

}  // namespace sluice::parser
