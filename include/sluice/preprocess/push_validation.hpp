#pragma once
// The preprocess rules for pushed records: the record parser and a deduplicator of their own
// (Kafka's event ids are remembered per preprocess worker, pushed ones here).

#include <memory>
#include <mutex>

#include "sluice/config/config.hpp"
#include "sluice/core/ports/push.hpp"
#include "sluice/preprocess/deduplicator.hpp"
#include "sluice/preprocess/record_parser.hpp"

namespace sluice {

/// validate() runs on any lookup pool thread: parsing is lock-free, dedup takes a lock.
class record_push_validator final : public push_validator {
public:
    explicit record_push_validator(const config& cfg)
        : parser_(std::make_shared<const record_parser>(cfg)), dedup_(cfg) {}
    processed validate(raw_message msg, std::int64_t now_ms) override {
        std::shared_ptr<const record_parser> parser;
        {
            std::lock_guard lock(mutex_);
            parser = parser_;
        }
        processed item = parser->parse(msg, now_ms);
        std::lock_guard lock(mutex_);
        dedup_.apply(item);
        return item;
    }
    /// A live reload's transforms and dedup (cfg stays alive as long as this validator uses it).
    void reconfigure(std::shared_ptr<const config> cfg) {
        auto parser = make_parser(cfg);
        std::lock_guard lock(mutex_);
        parser_ = std::move(parser);
        dedup_.reconfigure(*cfg);
    }

private:
    std::mutex mutex_;
    std::shared_ptr<const record_parser> parser_;
    deduplicator dedup_;
};

}  // namespace sluice
