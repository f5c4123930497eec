#include "sluice/preprocess/preprocess_stage.hpp"

#include "sluice/core/clock.hpp"
#include "sluice/core/stage_trace.hpp"

namespace sluice {

namespace {
constexpr std::size_t burst = 256;
constexpr std::chrono::milliseconds idle_wait{100};
constexpr std::chrono::milliseconds full_wait{10};
}  // namespace

preprocess_stage::preprocess_stage(const config& cfg, std::vector<channel<raw_message>*> inputs,
                                   std::vector<channel<processed>*> outputs)
    : parser_(std::make_shared<const record_parser>(cfg)), inputs_(std::move(inputs)), outputs_(std::move(outputs)) {
    for (std::size_t i = 0; i < inputs_.size(); ++i) dedup_.emplace_back(cfg);
}

void preprocess_stage::reconfigure(std::shared_ptr<const config> cfg) {
    auto parser = make_parser(cfg);
    {
        std::lock_guard lock(rules_mutex_);
        next_ = rules{std::move(cfg), std::move(parser)};
    }
    generation_.fetch_add(1, std::memory_order_release);
    for (auto* in : inputs_) in->readable->notify();
}

preprocess_stage::~preprocess_stage() {
    static const std::atomic<bool> stop_now{true};
    if (!threads_.empty()) drain_and_join(stop_now);
}

void preprocess_stage::start() {
    for (std::size_t i = 0; i < inputs_.size(); ++i) threads_.emplace_back([this, i] { run(i, nullptr); });
}

void preprocess_stage::drain_and_join(const std::atomic<bool>& abort) {
    abort_.store(&abort);
    draining_.store(true);
    for (auto* in : inputs_) in->readable->notify();
    for (auto& t : threads_) t.join();
    threads_.clear();
}

void preprocess_stage::run(std::size_t worker, const std::atomic<bool>*) {
    auto& in = *inputs_[worker];
    auto& out = *outputs_[worker];
    auto aborted = [this] {
        const auto* a = abort_.load();
        return a && a->load();
    };
    raw_message msg;
    std::shared_ptr<const record_parser> parser = parser_;
    std::uint64_t generation = 0;
    while (true) {
        if (const auto g = generation_.load(std::memory_order_acquire); g != generation) {
            std::lock_guard lock(rules_mutex_);
            parser = next_.parser;
            dedup_[worker].reconfigure(*next_.cfg);
            generation = g;
        }
        const auto seen = in.readable->epoch();
        std::size_t n = 0;
        while (n < burst && in.queue.try_pop(msg)) {
            ++n;
            processed item = parser->parse(msg, now_ms());
            dedup_[worker].apply(item);
            if (msg.consumed_us) {
                if (auto* r = std::get_if<record>(&item)) r->trace = {msg.kafka_timestamp_ms, msg.consumed_us, now_us()};
            }
            while (!out.queue.try_push(item)) {
                if (aborted()) return;
                out.readable->notify();
                const auto space_seen = out.writable.epoch();
                if (out.queue.try_push(item)) break;
                out.writable.wait_for_change(space_seen, full_wait);
            }
        }
        if (n > 0) {
            processed_.fetch_add(n, std::memory_order_relaxed);
            out.readable->notify();
            in.writable.notify();
            continue;
        }
        if (aborted() || (draining_.load() && in.queue.size() == 0)) return;
        in.readable->wait_for_change(seen, idle_wait);
    }
}

}  // namespace sluice
