#pragma once
// Ports of the HTTP push source (ingest/push): how it validates a pushed payload and where the
// validated items go. Implemented by preprocess (the same rules as Kafka messages) and by the
// store writer.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/record.hpp"

namespace sluice {

/// Turns one pushed payload into a record, a dead letter or a skipped item, with the parser,
/// transforms and dedup rules of Kafka messages. Any thread.
class push_validator {
public:
    virtual ~push_validator() = default;
    virtual processed validate(raw_message msg, std::int64_t now_ms) = 0;
};

/// Takes validated pushed items to the stores with the next batch.
class push_writer {
public:
    /// durable (false: the writer stopped first and nothing of it may be assumed written), and
    /// the items that became dead letters in the writer (late events), by their index in the push.
    using push_done = std::function<void(bool durable, std::vector<std::pair<std::size_t, std::string>> late)>;
    virtual ~push_writer() = default;
    /// False (done not called) when the writer refuses more pushed items now.
    virtual bool push(std::vector<processed> items, push_done done) = 0;
};

}  // namespace sluice
