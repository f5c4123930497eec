// Why a message became a dead letter travels as a reason, not only as text: the writer and the
// push answers decide on it.

#include <gtest/gtest.h>

#include "common/small_set.hpp"
#include "sluice/preprocess/record_parser.hpp"

namespace sluice {
namespace {

dead_letter parse_to_dead_letter(const raw_message& msg) {
    config cfg;
    cfg.feature_sets.push_back(testing_support::small_set({{"v", field_type::int64}}));
    cfg.kafka.max_message_bytes = 64;
    record_parser parser(cfg);
    auto out = parser.parse(msg, 1000);
    EXPECT_TRUE(std::holds_alternative<dead_letter>(out));
    return std::holds_alternative<dead_letter>(out) ? std::get<dead_letter>(out) : dead_letter{};
}

raw_message message(std::string payload) {
    raw_message m;
    m.source = {"t", 0, 7};
    m.payload = std::move(payload);
    return m;
}

TEST(DeadLetterReason, TombstoneTooLargeAndInvalidAreTold) {
    auto tombstone = message("");
    tombstone.has_value = false;
    EXPECT_EQ(parse_to_dead_letter(tombstone).reason, dead_letter_reason::tombstone);
    EXPECT_EQ(parse_to_dead_letter(message(std::string(100, 'x'))).reason, dead_letter_reason::too_large);
    const auto bad = parse_to_dead_letter(message(R"({"k":"a","ts":1000,"v":"not a number"})"));
    EXPECT_EQ(bad.reason, dead_letter_reason::invalid);
    EXPECT_NE(bad.error.find("'v'"), std::string::npos) << bad.error;  // the text still names the field
    EXPECT_EQ(std::string(to_string(dead_letter_reason::late_event)), "late_event");
}

}  // namespace
}  // namespace sluice
