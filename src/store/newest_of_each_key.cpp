#include "sluice/store/newest_of_each_key.hpp"

#include <string_view>
#include <unordered_map>

namespace sluice {

namespace {

// Whether latest keeps b over a (same set and key).
bool replaces(const record& b, const record& a) {
    if (b.event_time_ms != a.event_time_ms) return b.event_time_ms > a.event_time_ms;
    if (a.source.from_kafka() && b.source.from_kafka()) return b.source.offset < a.source.offset;
    return b.source.from_kafka() && !a.source.from_kafka();
}

}  // namespace

std::vector<const record*> newest_of_each_key(const std::vector<record>& records) {
    std::vector<std::unordered_map<std::string_view, std::size_t>> slot;  // per set: key -> index in newest
    std::vector<const record*> newest;
    for (const auto& r : records) {
        if (r.set_index >= slot.size()) slot.resize(r.set_index + 1);
        auto [it, inserted] = slot[r.set_index].try_emplace(r.key, newest.size());
        if (inserted)
            newest.push_back(&r);
        else if (replaces(r, *newest[it->second]))
            newest[it->second] = &r;
    }
    return newest;
}

}  // namespace sluice
