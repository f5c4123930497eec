#include "aggregation_gate.hpp"

#include "sluice/store/store_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_map>

#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/value_codec.hpp"

namespace sluice::writer {

aggregation_gate::aggregation_gate(const config& cfg, durable_store* durable, retrier& retry)
    : cfg_(cfg), durable_(durable), retry_(retry) {}

void aggregation_gate::seed(const std::vector<partition_offset>& committed) {
    for (const auto& o : committed) committed_next_[{o.topic, o.partition}] = o.next_offset;
}

void aggregation_gate::committed(const std::vector<partition_offset>& offsets) {
    for (const auto& o : offsets) {
        auto& next = committed_next_[{o.topic, o.partition}];
        next = std::max(next, o.next_offset);
    }
}

void aggregation_gate::aggregate(write_batch& batch) {
    const auto now = now_ms();
    // Newest new event per (set, key) within this batch, for the lateness rule.
    std::unordered_map<std::string, std::int64_t> batch_newest;
    std::set<std::tuple<std::string, std::int32_t, std::int64_t>> seen;
    std::vector<record> kept;
    kept.reserve(batch.records.size());
    for (auto& r : batch.records) {
        aggregation_state* agg = r.set_index < aggregators_.size() ? aggregators_[r.set_index] : nullptr;
        if (!agg) {
            kept.push_back(std::move(r));
            continue;
        }
        bool replay = false;
        if (r.source.from_kafka()) {
            auto it = committed_next_.find({r.source.topic, r.source.partition});
            replay = (it != committed_next_.end() && r.source.offset < it->second) ||
                     !seen.emplace(r.source.topic, r.source.partition, r.source.offset).second;
        }
        if (!replay) {
            const auto& set = cfg_.feature_sets[r.set_index];
            const std::string id = std::to_string(r.set_index) + '\x1f' + r.key;
            auto newest = batch_newest.find(id);
            const bool late = agg->too_late(r.key, r.event_time_ms) ||
                              (newest != batch_newest.end() && r.event_time_ms < newest->second - set.allowed_lateness_ms);
            if (late) {
                dead_letter d;
                d.set_index = r.set_index;
                d.source = r.source;
                d.received_at_ms = r.ingested_at_ms;
                d.reason = dead_letter_reason::late_event;
                d.error = late_event_error(set, r.key, r.event_time_ms);
                nlohmann::json payload = {{set.key_field, r.key}, {set.event_time_field, r.event_time_ms}};
                for (std::size_t i = 0; i < set.fields.size() && i < r.values.size(); ++i)
                    payload[set.fields[i].name] = nlohmann::json::parse(
                        value_to_json_text(set.fields[i].type, r.values[i]), nullptr, false);
                d.payload = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                batch.dead_letters.push_back(std::move(d));
                continue;
            }
            agg->add(r.key, r.event_time_ms, r.values, r.source.from_kafka() ? r.source.partition : -1);
            auto [slot, inserted] = batch_newest.try_emplace(id, r.event_time_ms);
            if (!inserted) slot->second = std::max(slot->second, r.event_time_ms);
        }
        kept.push_back(std::move(r));
    }
    batch.records = std::move(kept);
    // Every record of a key carries the key's aggregation values now (latest keeps the newest).
    std::unordered_map<std::string, std::vector<value>> values_now;
    for (auto& r : batch.records) {
        aggregation_state* agg = r.set_index < aggregators_.size() ? aggregators_[r.set_index] : nullptr;
        if (!agg) continue;
        const std::string id = std::to_string(r.set_index) + '\x1f' + r.key;
        auto it = values_now.find(id);
        if (it == values_now.end()) it = values_now.emplace(id, agg->values_at(r.key, now)).first;
        r.values.resize(cfg_.feature_sets[r.set_index].fields.size());
        r.values.insert(r.values.end(), it->second.begin(), it->second.end());
    }
}

void aggregation_gate::partitions_changed(const std::vector<partition_offset>& partitions, bool revoked) {
    std::lock_guard lock(changes_mutex_);
    for (const auto& p : partitions) {
        changes_.push_back({p, revoked});
        if (revoked)
            catching_up_.erase({p.topic, p.partition});
        else
            catching_up_.insert({p.topic, p.partition});
    }
    any_catching_up_.store(!catching_up_.empty());
}

bool aggregation_gate::catching_up(const std::string& topic, std::int32_t partition) const {
    if (!any_catching_up_.load()) return false;  // the common case, on the read path: no lock
    std::lock_guard lock(changes_mutex_);
    return catching_up_.count({topic, partition}) > 0;
}

void aggregation_gate::apply_partition_changes() {
    std::vector<partition_change> changes;
    {
        std::lock_guard lock(changes_mutex_);
        if (changes_.empty()) return;
        changes.swap(changes_);
    }
    const auto& log = module_logger(log_module::store);
    for (const auto& c : changes) {
        for (std::uint32_t set = 0; set < cfg_.feature_sets.size() && set < aggregators_.size(); ++set) {
            const auto& fs = cfg_.feature_sets[set];
            aggregation_state* agg = aggregators_[set];
            if (!agg || fs.topic != c.where.topic) continue;
            const topic_partition tp{c.where.topic, c.where.partition};
            if (c.revoked) {
                // Another instance keeps these keys now; state taken back later is rebuilt whole.
                agg->evict_partitions({c.where.partition});
                committed_next_.erase(tp);
                continue;
            }
            auto it = committed_next_.find(tp);
            const std::int64_t from = it == committed_next_.end() ? 0 : it->second;
            const std::int64_t to = c.where.next_offset;
            if (to <= from) continue;  // nobody wrote this partition since this writer did
            history_scan scan;
            scan.since_ms = now_ms() - fs.aggregation_horizon_ms();
            scan.topic = c.where.topic;
            scan.partition = c.where.partition;
            scan.from_offset = from;
            scan.to_offset = to;
            std::size_t rows = 0;
            bool first_try = true;
            auto catch_up = [&] {
                rows = 0;
                // With no state of its own for the partition (or after a failed try that may have
                // added part of the rows), the partition's state is rebuilt whole.
                if (from == 0 || !first_try) {
                    agg->evict_partitions({c.where.partition});
                    scan.from_offset = 0;
                }
                first_try = false;
                return durable_->for_each_history(
                    set, scan, [&](const std::string& key, std::int64_t t, const std::vector<value>& values, std::int32_t partition) {
                        agg->add(key, t, values, partition);
                        ++rows;
                    });
            };
            // The state must not be served half caught up: a refused read is held like a write.
            const bool ok = durable_ && retry_.run("aggregation catch-up from history",
                                                   stats_ ? &stats_->postgres_errors : nullptr, catch_up, on_permanent::hold)
                                            .ok();
            if (!ok) continue;
            committed_next_[tp] = std::max(from, to);
            log->info("{}[{}]: aggregation state caught up from {} history rows (offsets {}..{})", c.where.topic,
                      c.where.partition, rows, scan.from_offset, to);
        }
        if (c.revoked) continue;
        // Served again, unless the partition came back meanwhile and waits for its next catch-up.
        std::lock_guard lock(changes_mutex_);
        const bool again = std::any_of(changes_.begin(), changes_.end(), [&](const partition_change& n) {
            return n.where.topic == c.where.topic && n.where.partition == c.where.partition;
        });
        if (!again) catching_up_.erase({c.where.topic, c.where.partition});
        any_catching_up_.store(!catching_up_.empty());
    }
}

}  // namespace sluice::writer

namespace sluice {

// Declared in sluice/store/store_writer.hpp.
std::string late_event_error(const feature_set_config& set, const std::string& key, std::int64_t event_time_ms) {
    return "late event: event time " + format_rfc3339_ms(event_time_ms) + " is more than allowed_lateness (" +
           std::to_string(set.allowed_lateness_ms / 1000) + " s) older than the newest event of key '" + key + "'";
}

}  // namespace sluice
