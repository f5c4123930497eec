#include "offset_chain.hpp"

#include <algorithm>

namespace sluice::writer {

void offset_chain::forget(const std::vector<partition_offset>& partitions) {
    std::lock_guard lock(forgotten_mutex_);
    for (const auto& p : partitions) forgotten_.emplace_back(p.topic, p.partition);
}

void offset_chain::apply_forgotten() {
    std::vector<topic_partition> gone;
    {
        std::lock_guard lock(forgotten_mutex_);
        gone.swap(forgotten_);
    }
    for (const auto& tp : gone) next_.erase(tp);
}

result<std::size_t> offset_chain::fit(write_batch& batch) {
    std::lock_guard lock(mutex_);
    apply_forgotten();
    if (!durable_ || batch.offsets.empty()) return std::size_t{0};
    const bool unknown = std::any_of(batch.offsets.begin(), batch.offsets.end(), [&](const partition_offset& o) {
        return !next_.contains({o.topic, o.partition});
    });
    if (unknown) {
        auto stored = durable_->read_offsets(group_id_);
        if (!stored) return result<std::size_t>::failure("reading consumer_offsets: " + stored.message(), stored.kind());
        std::map<topic_partition, std::int64_t> by_partition;
        for (const auto& o : stored.value()) by_partition[{o.topic, o.partition}] = o.next_offset;
        for (const auto& o : batch.offsets) {
            const topic_partition tp{o.topic, o.partition};
            if (next_.contains(tp)) continue;
            const auto it = by_partition.find(tp);
            next_[tp] = it == by_partition.end() ? partition_offset::no_stored_offset : it->second;
        }
    }
    // Below the chain: stored already.
    const auto stored_already = [&](const record_source& src) {
        if (!src.from_kafka()) return false;
        const auto it = next_.find({src.topic, src.partition});
        return it != next_.end() && src.offset < it->second;
    };
    const std::size_t before = batch.records.size() + batch.dead_letters.size();
    std::erase_if(batch.records, [&](const record& r) { return stored_already(r.source); });
    std::erase_if(batch.dead_letters, [&](const dead_letter& d) { return stored_already(d.source); });
    std::erase_if(batch.offsets, [&](partition_offset& o) {
        const std::int64_t from = next_.at({o.topic, o.partition});
        o.expected = from;
        return o.next_offset <= from;  // nothing past what is stored
    });
    return before - batch.records.size() - batch.dead_letters.size();
}

void offset_chain::fenced(const write_batch& batch) {
    std::lock_guard lock(mutex_);
    for (const auto& o : batch.offsets) next_.erase({o.topic, o.partition});
}

void offset_chain::advance(const std::vector<partition_offset>& offsets) {
    if (!durable_) return;
    std::lock_guard lock(mutex_);
    for (const auto& o : offsets) {
        auto& next = next_.try_emplace({o.topic, o.partition}, o.next_offset).first->second;
        next = std::max(next, o.next_offset);
    }
}

}  // namespace sluice::writer
