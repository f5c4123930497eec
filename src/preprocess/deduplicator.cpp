// The deduplicator (the rules are in deduplicator.hpp).

#include "sluice/preprocess/deduplicator.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "parser/coercion.hpp"

namespace sluice {

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

namespace {

std::unique_ptr<deduplicator::set_state> make_state(const feature_set_config& set);

}  // namespace

deduplicator::deduplicator(const config& cfg) {
    for (const auto& set : cfg.feature_sets) sets_.push_back(set.dedup.enabled() ? make_state(set) : nullptr);
}

void deduplicator::reconfigure(const config& cfg) {
    sets_.resize(std::max(sets_.size(), cfg.feature_sets.size()));
    for (std::size_t i = 0; i < cfg.feature_sets.size(); ++i) {
        const auto& set = cfg.feature_sets[i];
        auto& s = sets_[i];
        if (!set.dedup.enabled()) {
            s.reset();
        } else if (!s || s->field_name != set.dedup.field) {
            s = make_state(set);  // another id field: the ids remembered are not ids of it
        } else {
            s->window_ms = std::max<std::int64_t>(set.dedup.window_ms, 0);
            s->max_ids = static_cast<std::size_t>(std::max<std::int64_t>(set.dedup.max_ids, 1));
            while (s->ids.size() > s->max_ids) {
                s->forget_oldest();
                ++evicted_early_;
            }
        }
    }
}

namespace {

std::unique_ptr<deduplicator::set_state> make_state(const feature_set_config& set) {
    auto s = std::make_unique<deduplicator::set_state>();
    s->window_ms = std::max<std::int64_t>(set.dedup.window_ms, 0);
    s->max_ids = static_cast<std::size_t>(std::max<std::int64_t>(set.dedup.max_ids, 1));
    s->field = set.fields.size();
    for (std::size_t i = 0; i < set.fields.size(); ++i)
        if (set.fields[i].name == set.dedup.field) s->field = i;
    if (s->field == set.fields.size())
        throw std::invalid_argument("feature set " + set.name + ": dedup names an undeclared field '" +
                                    set.dedup.field + "'");
    s->field_name = set.dedup.field;
    return s;
}

}  // namespace

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
