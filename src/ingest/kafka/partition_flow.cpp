#include "partition_flow.hpp"

#include <functional>

namespace sluice::kafka {

partition_flow::partition_flow(std::size_t queues, double pause_watermark, double resume_watermark)
    : pause_watermark_(pause_watermark), resume_watermark_(resume_watermark), queues_(queues == 0 ? 1 : queues),
      throttled_(queues_, false) {}

std::size_t partition_flow::route(const std::string& topic, std::int32_t partition) const {
    return (std::hash<std::string>{}(topic) + static_cast<std::size_t>(partition)) % queues_;
}

void partition_flow::assign(const std::vector<topic_partition>& partitions, bool incremental) {
    std::lock_guard lock(mutex_);
    if (!incremental) owned_.clear();
    for (const auto& tp : partitions) owned_[tp] = partition_state{};
}

void partition_flow::revoke(const std::vector<topic_partition>& partitions, bool incremental) {
    std::lock_guard lock(mutex_);
    for (const auto& tp : partitions) owned_.erase(tp);
    if (!incremental) owned_.clear();
}

bool partition_flow::first_delivery(const std::string& topic, std::int32_t partition) {
    std::lock_guard lock(mutex_);
    auto it = owned_.find({topic, partition});
    if (it == owned_.end() || it->second.delivered) return false;
    it->second.delivered = true;
    return true;
}

flow_changes partition_flow::update(const std::vector<queue_fill>& queues, bool stopping) {
    std::lock_guard lock(mutex_);
    for (std::size_t w = 0; w < queues.size() && w < throttled_.size(); ++w) {
        const auto& q = queues[w];
        const double fill = static_cast<double>(q.size) / static_cast<double>(q.capacity == 0 ? 1 : q.capacity);
        if (stopping || q.held_back || fill >= pause_watermark_)
            throttled_[w] = true;
        else if (fill <= resume_watermark_)
            throttled_[w] = false;
    }
    flow_changes changes;
    for (auto& [tp, st] : owned_) {
        const bool want = throttled_[route(tp.first, tp.second)];
        if (want && st.delivered && !st.paused) {
            changes.pause.push_back(tp);
            st.paused = true;
        } else if (!want && st.paused) {
            changes.resume.push_back(tp);
            st.paused = false;
        }
    }
    return changes;
}

bool partition_flow::owns(const std::string& topic, std::int32_t partition) const {
    std::lock_guard lock(mutex_);
    return owned_.count({topic, partition}) > 0;
}

bool partition_flow::any() const {
    std::lock_guard lock(mutex_);
    return !owned_.empty();
}

std::vector<std::int32_t> partition_flow::owned_of(const std::string& topic) const {
    std::lock_guard lock(mutex_);
    std::vector<std::int32_t> out;
    for (const auto& [tp, state] : owned_)
        if (tp.first == topic) out.push_back(tp.second);
    return out;
}

}  // namespace sluice::kafka
