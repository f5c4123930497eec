#pragma once
// The preprocess rules for pushed records: the record parser and a deduplicator of their own
// (Kafka's event ids are remembered per preprocess worker, pushed ones here).

#include <mutex>

#include "sluice/config/config.hpp"
#include "sluice/core/ports/push.hpp"
#include "sluice/preprocess/deduplicator.hpp"
#include "sluice/preprocess/record_parser.hpp"

namespace sluice {

/// validate() runs on any lookup pool thread: parsing is lock-free, dedup takes a lock.
class record_push_validator final : public push_validator {
public:
    explicit record_push_validator(const config& cfg) : parser_(cfg), dedup_(cfg) {}
    processed validate(raw_message msg, std::int64_t now_ms) override {
        processed item = parser_.parse(msg, now_ms);
        std::lock_guard lock(dedup_mutex_);
        dedup_.apply(item);
        return item;
    }

private:
    record_parser parser_;
    std::mutex dedup_mutex_;
    deduplicator dedup_;
};

}  // namespace sluice
