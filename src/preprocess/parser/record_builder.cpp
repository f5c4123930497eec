// The record, skip or dead letter made from an event's raw values (record_builder.hpp).

#include "record_builder.hpp"

namespace sluice::parser {

dead_letter make_dead_letter(const raw_message& msg, std::string error, std::int64_t now, dead_letter_reason reason) {
    dead_letter d;
    d.set_index = msg.set_index;
    d.source = msg.source;
    d.payload = msg.payload;
    d.error = sanitize_utf8(error);
    d.received_at_ms = now;
    d.reason = reason;
    return d;
}

}  // namespace sluice::parser
