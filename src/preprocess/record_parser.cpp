// The record parser and the deduplicator (the rules are in record_parser.hpp): the message checks, then the fast path
// or the nlohmann path, which share the plan (parser/plan.hpp) and build the outcome the same way
// (parser/record_builder.hpp). parse() runs on every preprocess worker at once; it touches nothing
// but its arguments, the compiled plans and its own thread's simdjson parser (the fast path), and
// it never throws.

#include "sluice/preprocess/record_parser.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "parser/coercion.hpp"
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
    if (!msg.has_value) return make_dead_letter(msg, "tombstone: a message with a null value is not a record", now);
    if (static_cast<std::int64_t>(msg.payload.size()) > cfg_.kafka.max_message_bytes)
        return make_dead_letter(msg,
                                "message of " + std::to_string(msg.payload.size()) + " bytes exceeds max_message_bytes " +
                                    std::to_string(cfg_.kafka.max_message_bytes),
                                now);
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

// ---------------------------------------------------------------------------------------------
// deduplicator

struct deduplicator::set_state {
    std::int64_t window_ms = 0;
    std::size_t max_ids = 0;
    std::size_t field = 0;
    std::string field_name;
    std::int64_t newest = std::numeric_limits<std::int64_t>::min();
    std::unordered_map<std::string, std::int64_t> ids;  // id → event time first seen
    // Oldest first; each entry points at its id's key in `ids` (stable: the map is node-based)
    // and ids leave the map only through this queue, so both always hold the same ids.
    using entry = std::pair<std::int64_t, const std::string*>;
    std::priority_queue<entry, std::vector<entry>, std::greater<>> by_time;

    void forget_oldest() {
        ids.erase(*by_time.top().second);
        by_time.pop();
    }
};

deduplicator::deduplicator(const config& cfg) {
    for (const auto& set : cfg.feature_sets) {
        if (!set.dedup.enabled()) {
            sets_.push_back(nullptr);
            continue;
        }
        auto s = std::make_unique<set_state>();
        s->window_ms = std::max<std::int64_t>(set.dedup.window_ms, 0);
        s->max_ids = static_cast<std::size_t>(std::max<std::int64_t>(set.dedup.max_ids, 1));
        s->field = set.fields.size();
        for (std::size_t i = 0; i < set.fields.size(); ++i)
            if (set.fields[i].name == set.dedup.field) s->field = i;
        if (s->field == set.fields.size())
            throw std::invalid_argument("feature set " + set.name + ": dedup names an undeclared field '" +
                                        set.dedup.field + "'");
        s->field_name = set.dedup.field;
        sets_.push_back(std::move(s));
    }
}

deduplicator::~deduplicator() = default;
deduplicator::deduplicator(deduplicator&&) noexcept = default;
deduplicator& deduplicator::operator=(deduplicator&&) noexcept = default;

bool deduplicator::seen(std::uint32_t set_index, std::string_view id, std::int64_t event_time_ms) {
    if (set_index >= sets_.size() || !sets_[set_index]) return false;
    set_state& s = *sets_[set_index];
    s.newest = std::max(s.newest, event_time_ms);
    // Saturating: newest - window must not wrap below INT64_MIN.
    const std::int64_t oldest_kept = s.newest < std::numeric_limits<std::int64_t>::min() + s.window_ms
                                         ? std::numeric_limits<std::int64_t>::min()
                                         : s.newest - s.window_ms;
    while (!s.by_time.empty() && s.by_time.top().first < oldest_kept) s.forget_oldest();
    if (event_time_ms < oldest_kept) {
        ++too_old_;
        return false;
    }
    const auto [it, inserted] = s.ids.try_emplace(std::string(id), event_time_ms);
    if (!inserted) return true;
    s.by_time.emplace(event_time_ms, &it->first);
    while (s.ids.size() > s.max_ids) {
        s.forget_oldest();
        ++evicted_early_;
    }
    return false;
}

void deduplicator::apply(processed& item) {
    auto* r = std::get_if<record>(&item);
    if (r == nullptr || r->set_index >= sets_.size() || !sets_[r->set_index]) return;
    const set_state& s = *sets_[r->set_index];
    if (s.field >= r->values.size()) return;
    const value& v = r->values[s.field];
    std::string id;
    if (const auto* str = std::get_if<std::string>(&v))
        id = *str;
    else if (const auto* i = std::get_if<std::int64_t>(&v))
        id = std::to_string(*i);
    else
        return;  // a null id is never a duplicate
    if (!seen(r->set_index, id, r->event_time_ms)) return;
    skipped dup{r->set_index, r->source,
                parser::sanitize_utf8("duplicate event id " + parser::value_text(value{id}) + " (field '" +
                                      s.field_name + "') within the dedup window")};
    item = std::move(dup);
}

std::size_t deduplicator::remembered() const {
    std::size_t n = 0;
    for (const auto& s : sets_)
        if (s) n += s->ids.size();
    return n;
}

std::uint64_t deduplicator::evicted_early() const { return evicted_early_; }
std::uint64_t deduplicator::too_old() const { return too_old_; }

}  // namespace sluice
