#pragma once
// The preprocess workers: raw messages in, records and dead letters out, in partition order.

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/bounded_queue.hpp"
#include "sluice/core/record.hpp"
#include "sluice/preprocess/deduplicator.hpp"
#include "sluice/preprocess/record_parser.hpp"

namespace sluice {

/// pipeline.preprocess_threads workers; worker i reads inputs[i] and writes outputs[i], so one
/// partition (always routed to the same input) stays in order. Owned by the app.
class preprocess_stage {
public:
    preprocess_stage(const config& cfg, std::vector<channel<raw_message>*> inputs,
                     std::vector<channel<processed>*> outputs);
    ~preprocess_stage();

    void start();
    /// Processes everything already queued, then joins. abort (set by the app on timeout) ends sooner.
    void drain_and_join(const std::atomic<bool>& abort);
    std::uint64_t processed_count() const { return processed_.load(std::memory_order_relaxed); }
    /// A live reload's transforms and dedup: each worker takes them between two bursts of
    /// messages, so a message is parsed wholly by the old rules or wholly by the new.
    void reconfigure(std::shared_ptr<const config> cfg);

private:
    void run(std::size_t worker, const std::atomic<bool>* abort_flag);

    struct rules {
        std::shared_ptr<const config> cfg;  // null for the constructor's (which outlives the stage)
        std::shared_ptr<const record_parser> parser;
    };
    std::shared_ptr<const record_parser> parser_;
    std::atomic<std::uint64_t> generation_{0};
    mutable std::mutex rules_mutex_;
    rules next_;  // the newest reload's, under rules_mutex_
    std::vector<deduplicator> dedup_;  // one per worker (a worker owns its partitions' event ids)
    std::vector<channel<raw_message>*> inputs_;
    std::vector<channel<processed>*> outputs_;
    std::vector<std::thread> threads_;
    std::atomic<bool> draining_{false};
    std::atomic<const std::atomic<bool>*> abort_{nullptr};
    std::atomic<std::uint64_t> processed_{0};
};

}  // namespace sluice
