// RFC 3339 formatting and parsing: the event times users send and the timestamps the API returns.

#include "sluice/core/clock.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace sluice {
namespace {

constexpr std::int64_t nov21_10h = 1795255200000;  // 2026-11-21T10:00:00Z

TEST(CoreClock, FormatsEpochZero) { EXPECT_EQ(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z"); }

TEST(CoreClock, FormatsKnownDateWithMilliseconds) {
    EXPECT_EQ(format_rfc3339_ms(nov21_10h), "2026-11-21T10:00:00.000Z");
    EXPECT_EQ(format_rfc3339_ms(nov21_10h + 123), "2026-11-21T10:00:00.123Z");
    EXPECT_EQ(format_rfc3339_ms(1709164800000), "2024-02-29T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339_ms(253402300799999), "9999-12-31T23:59:59.999Z");
}

TEST(CoreClock, FormatsNegativeValuesBeforeTheEpoch) {
    EXPECT_EQ(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(format_rfc3339_ms(-1000), "1969-12-31T23:59:59.000Z");
    EXPECT_EQ(format_rfc3339_ms(-86400000), "1969-12-31T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339_ms(-86400001), "1969-12-30T23:59:59.999Z");
}

TEST(CoreClock, NowIsCloseToTheSystemClock) {
    const auto t = now_ms();
    EXPECT_GT(t, nov21_10h - 5LL * 365 * 86400000);  // not zero, not seconds
    EXPECT_LT(t, 253402300799999);
}

TEST(CoreClock, ParsesUtcWithZ) {
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00Z"), std::optional<std::int64_t>(nov21_10h));
    EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), std::optional<std::int64_t>(0));
    EXPECT_EQ(parse_rfc3339("2024-02-29T00:00:00Z"), std::optional<std::int64_t>(1709164800000));
    EXPECT_EQ(parse_rfc3339("2000-02-29T00:00:00Z"), std::optional<std::int64_t>(951782400000));  // 400-year leap
}

TEST(CoreClock, ParsesOffsets) {
    EXPECT_EQ(parse_rfc3339("2026-11-21T12:00:00+02:00"), std::optional<std::int64_t>(nov21_10h));
    EXPECT_EQ(parse_rfc3339("2026-11-21T04:30:00-05:30"), std::optional<std::int64_t>(nov21_10h));
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00+00:00"), std::optional<std::int64_t>(nov21_10h));
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00-00:00"), std::optional<std::int64_t>(nov21_10h));
    // An offset that crosses midnight lands on the previous day.
    EXPECT_EQ(parse_rfc3339("2026-11-21T01:00:00+02:00"), std::optional<std::int64_t>(nov21_10h - 11 * 3600000LL));
}

TEST(CoreClock, ParsesFractionsOfOneThreeAndSixDigits) {
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00.5Z"), std::optional<std::int64_t>(nov21_10h + 500));
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00.123Z"), std::optional<std::int64_t>(nov21_10h + 123));
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00.123456Z"), std::optional<std::int64_t>(nov21_10h + 123));
    EXPECT_EQ(parse_rfc3339("2026-11-21T12:00:00.007+02:00"), std::optional<std::int64_t>(nov21_10h + 7));
    EXPECT_EQ(parse_rfc3339("1969-12-31T23:59:59.5Z"), std::optional<std::int64_t>(-500));
}

TEST(CoreClock, AcceptsLowercaseTAndZ) {
    EXPECT_EQ(parse_rfc3339("2026-11-21t10:00:00z"), std::optional<std::int64_t>(nov21_10h));
    EXPECT_EQ(parse_rfc3339("2026-11-21t10:00:00.250Z"), std::optional<std::int64_t>(nov21_10h + 250));
}

TEST(CoreClock, RoundTripsFormattedValues) {
    for (std::int64_t t : {std::int64_t{0}, std::int64_t{-1}, nov21_10h + 999, std::int64_t{951782400001},
                           std::int64_t{253402300799999}}) {
        EXPECT_EQ(parse_rfc3339(format_rfc3339_ms(t)), std::optional<std::int64_t>(t)) << format_rfc3339_ms(t);
    }
}

TEST(CoreClock, RefusesInvalidDates) {
    EXPECT_EQ(parse_rfc3339("2026-02-30T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-02-29T00:00:00Z"), std::nullopt);  // 2026 is not a leap year
    EXPECT_EQ(parse_rfc3339("1900-02-29T00:00:00Z"), std::nullopt);  // century, not a leap year
    EXPECT_EQ(parse_rfc3339("2026-13-01T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-00-01T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-04-31T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-00T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T24:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:60:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:61Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00+24:00"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00+02:60"), std::nullopt);
}

TEST(CoreClock, RefusesGarbage) {
    EXPECT_EQ(parse_rfc3339(""), std::nullopt);
    EXPECT_EQ(parse_rfc3339("yesterday"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("not a timestamp at all"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00"), std::nullopt);  // no zone
    EXPECT_EQ(parse_rfc3339("2026-11-21X10:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026/11/21T10:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00.Z"), std::nullopt);  // empty fraction
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00+0200"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00+02"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-1a-21T10:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("1795255200000"), std::nullopt);
}

TEST(CoreClock, RefusesTrailingCharacters) {
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00ZZ"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00Z "), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00+02:00x"), std::nullopt);
    EXPECT_EQ(parse_rfc3339("2026-11-21T10:00:00.123Zabc"), std::nullopt);
    EXPECT_EQ(parse_rfc3339(std::string("2026-11-21T10:00:00Z\0", 21)), std::nullopt);
}

}  // namespace
}  // namespace sluice
