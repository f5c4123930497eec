// The record parser (the rules are in record_parser.hpp): the message checks, then the fast path
// or the nlohmann path, which share the plan (parser/plan.hpp) and build the outcome the same way
// (parser/record_builder.hpp). parse() runs on every preprocess worker at once; it touches nothing
// but its arguments, the compiled plans and its own thread's simdjson parser (the fast path), and
// it never throws.

#include "sluice/preprocess/record_parser.hpp"
#include "sluice/core/value_codec.hpp"

#include <algorithm>

#include <string>
#include <utility>

#include "parser/fast_path.hpp"
#include "parser/plan.hpp"
#include "parser/record_builder.hpp"

namespace sluice {

using parser::json;
using parser::make_dead_letter;

record_parser::record_parser(const config& cfg) : cfg_(cfg) {
    auto plans = std::make_shared<std::vector<set_plan>>();
    plans->reserve(cfg.feature_sets.size());
    for (const auto& set : cfg.feature_sets) plans->push_back(parser::compile(set));
    plans_ = std::move(plans);
}

record_parser::~record_parser() = default;

processed record_parser::parse(const raw_message& msg, std::int64_t now) const {
    processed item = parse_event(msg, now);
    if (const auto* r = std::get_if<record>(&item)) {
        std::string why = quarantine_rule(*r, msg);
        if (!why.empty()) return make_dead_letter(msg, std::move(why), now, dead_letter_reason::quarantined);
    }
    return item;
}

// The first expectation of severity quarantine the record breaks, in words; "" when none (or
// when it was released from the quarantine).
std::string record_parser::quarantine_rule(const record& r, const raw_message& msg) const {
    if (r.set_index >= cfg_.feature_sets.size() || released_from_quarantine(msg.source.topic)) return {};
    const auto& set = cfg_.feature_sets[r.set_index];
    for (const auto& e : set.expectations) {
        if (e.severity != expectation_severity::quarantine || e.field_index >= r.values.size()) continue;
        const value& v = r.values[e.field_index];
        if (std::holds_alternative<std::monostate>(v)) continue;
        bool out = false;
        if (e.kind == expectation_kind::range) {
            const double x = std::holds_alternative<std::int64_t>(v) ? static_cast<double>(std::get<std::int64_t>(v))
                                                                     : std::get<double>(v);
            out = (e.min && x < *e.min) || (e.max && x > *e.max);
        } else if (e.kind == expectation_kind::allowed) {
            out = std::find(e.values.begin(), e.values.end(), v) == e.values.end();
        }
        if (out)
            return "quarantined by the expectation \"" + e.describe() + "\": " + e.field + " is " +
                   value_to_json_text(set.fields[e.field_index].type, v);
    }
    return {};
}

processed record_parser::parse_event(const raw_message& msg, std::int64_t now) const {
    if (!msg.has_value)
        return make_dead_letter(msg, "tombstone: a message with a null value is not a record", now,
                                dead_letter_reason::tombstone);
    if (static_cast<std::int64_t>(msg.payload.size()) > cfg_.kafka.max_message_bytes)
        return make_dead_letter(msg,
                                "message of " + std::to_string(msg.payload.size()) + " bytes exceeds max_message_bytes " +
                                    std::to_string(cfg_.kafka.max_message_bytes),
                                now, dead_letter_reason::too_large);
    if (msg.payload.empty()) return make_dead_letter(msg, "empty message value", now);
    if (msg.set_index >= plans_->size()) return make_dead_letter(msg, "no feature set for this message", now);

    const auto& set = cfg_.feature_sets[msg.set_index];
    const auto& plan = (*plans_)[msg.set_index];
    if (plan.fast && msg.payload.size() <= parser::fast_path_max_bytes)
        if (auto fast = parser::parse_members(msg, set, plan, now)) return std::move(*fast);

    json doc = json::parse(msg.payload, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
        // Parse again with exceptions only to get the position for the dead letter.
        std::string why = "malformed JSON";
        try {
            json again = json::parse(msg.payload);
            (void)again;
        } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
            why = std::string("malformed JSON: ") + e.what();
        }
        return make_dead_letter(msg, std::move(why), now);
    }
    if (!doc.is_object()) return make_dead_letter(msg, "the event is not a JSON object", now);

    // 1. Renames, on the raw event.
    for (const auto& [from, to] : plan.renames) {
        const auto it = doc.find(from);
        if (it == doc.end()) continue;
        json moved = std::move(*it);
        doc.erase(it);
        doc[to] = std::move(moved);
    }
    return parser::build(msg, set, plan, [&](std::size_t read) { return parser::find_at(doc, parser::path_of(plan, read)); },
                         now);
}

std::shared_ptr<const record_parser> make_parser(std::shared_ptr<const config> cfg) {
    struct owned final : record_parser {
        explicit owned(std::shared_ptr<const config> c) : record_parser(*c), keep(std::move(c)) {}
        std::shared_ptr<const config> keep;
    };
    return std::make_shared<const owned>(std::move(cfg));
}

}  // namespace sluice
