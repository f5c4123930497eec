// The route table: matching, parameter decoding, 404 vs 405.

#include <gtest/gtest.h>

#include "../../../src/serve/http/router.hpp"

namespace sluice::serve {
namespace {

handler noop() {
    return [](const request_context&, const responder&) {};
}

class RouterTest : public ::testing::Test {
protected:
    void SetUp() override {
        routes_.add(http::verb::get, "/healthz", "", noop());
        routes_.add(http::verb::get, "/v1/features/{set}/{key}", "read", noop());
        routes_.add(http::verb::get, "/v1/features/{set}/{key}/history", "read", noop());
        routes_.add(http::verb::post, "/v1/ingest/{set}", "write", noop());
        routes_.add(http::verb::get, "/v1/ingest/{set}", "admin", noop());
    }
    router routes_;
};

TEST_F(RouterTest, MatchesLiteralPath) {
    auto m = routes_.find(http::verb::get, "/healthz");
    ASSERT_EQ(m.result, router::match::outcome::found);
    EXPECT_EQ(m.matched->pattern, "/healthz");
    EXPECT_TRUE(m.params.empty());
    EXPECT_TRUE(m.public_path);
}

TEST_F(RouterTest, ExtractsParamsByName) {
    auto m = routes_.find(http::verb::get, "/v1/features/user_activity/42");
    ASSERT_EQ(m.result, router::match::outcome::found);
    EXPECT_EQ(m.matched->pattern, "/v1/features/{set}/{key}");
    EXPECT_EQ(m.matched->scope, "read");
    ASSERT_EQ(m.params.size(), 2u);
    EXPECT_EQ(m.params[0], (std::pair<std::string, std::string>{"set", "user_activity"}));
    EXPECT_EQ(m.params[1], (std::pair<std::string, std::string>{"key", "42"}));
    EXPECT_FALSE(m.public_path);
}

TEST_F(RouterTest, LongerPatternIsADifferentRoute) {
    auto m = routes_.find(http::verb::get, "/v1/features/s/k/history");
    ASSERT_EQ(m.result, router::match::outcome::found);
    EXPECT_EQ(m.matched->pattern, "/v1/features/{set}/{key}/history");
}

TEST_F(RouterTest, DecodesEncodedSlashSpaceAndUtf8InParams) {
    auto m = routes_.find(http::verb::get, "/v1/features/user_activity/a%2Fb%20c%2fd%C3%A9%E2%82%AC");
    ASSERT_EQ(m.result, router::match::outcome::found);
    EXPECT_EQ(m.matched->pattern, "/v1/features/{set}/{key}");
    ASSERT_EQ(m.params.size(), 2u);
    EXPECT_EQ(m.params[1].second, "a/b c/d\xC3\xA9\xE2\x82\xAC");
}

TEST_F(RouterTest, PlusIsLiteralInPaths) {
    auto m = routes_.find(http::verb::get, "/v1/features/s/a+b");
    ASSERT_EQ(m.result, router::match::outcome::found);
    EXPECT_EQ(m.params[1].second, "a+b");
}

TEST_F(RouterTest, RawUtf8InPathIsKept) {
    auto m = routes_.find(http::verb::get, "/v1/features/s/\xC3\xBC" "ber");
    ASSERT_EQ(m.result, router::match::outcome::found);
    EXPECT_EQ(m.params[1].second, "\xC3\xBC" "ber");
}

TEST_F(RouterTest, BadEscapeIsABadPath) {
    EXPECT_EQ(routes_.find(http::verb::get, "/v1/features/s/a%G1").result, router::match::outcome::bad_path);
    EXPECT_EQ(routes_.find(http::verb::get, "/v1/features/s/a%4").result, router::match::outcome::bad_path);
    EXPECT_EQ(routes_.find(http::verb::get, "/v1/features/s/a%").result, router::match::outcome::bad_path);
    EXPECT_EQ(routes_.find(http::verb::get, "v1/features/s/k").result, router::match::outcome::bad_path);
    EXPECT_EQ(routes_.find(http::verb::get, "").result, router::match::outcome::bad_path);
}

TEST_F(RouterTest, UnknownPathIsNotFound) {
    EXPECT_EQ(routes_.find(http::verb::get, "/nope").result, router::match::outcome::not_found);
    EXPECT_EQ(routes_.find(http::verb::get, "/").result, router::match::outcome::not_found);
    EXPECT_EQ(routes_.find(http::verb::get, "/v1/features/s").result, router::match::outcome::not_found);
    // A trailing slash or an empty parameter is not a match.
    EXPECT_EQ(routes_.find(http::verb::get, "/healthz/").result, router::match::outcome::not_found);
    EXPECT_EQ(routes_.find(http::verb::get, "/v1/features//k").result, router::match::outcome::not_found);
    EXPECT_EQ(routes_.find(http::verb::get, "/v1/features/s/").result, router::match::outcome::not_found);
}

TEST_F(RouterTest, LiteralSegmentsCompareDecoded) {
    // %68 is 'h': the literal "healthz" matches after decoding.
    EXPECT_EQ(routes_.find(http::verb::get, "/%68ealthz").result, router::match::outcome::found);
    EXPECT_EQ(routes_.find(http::verb::get, "/HEALTHZ").result, router::match::outcome::not_found);
}

TEST_F(RouterTest, KnownPathWithWrongMethodIsMethodNotAllowedWithAllow) {
    auto m = routes_.find(http::verb::post, "/healthz");
    EXPECT_EQ(m.result, router::match::outcome::method_not_allowed);
    EXPECT_EQ(m.allow, "GET");
    EXPECT_EQ(m.matched, nullptr);

    auto m2 = routes_.find(http::verb::delete_, "/v1/ingest/s");
    EXPECT_EQ(m2.result, router::match::outcome::method_not_allowed);
    EXPECT_EQ(m2.allow, "POST, GET");
    EXPECT_FALSE(m2.public_path);
}

TEST_F(RouterTest, RejectsMalformedPatterns) {
    router r;
    EXPECT_THROW(r.add(http::verb::get, "no-slash", "", noop()), std::invalid_argument);
    EXPECT_THROW(r.add(http::verb::get, "/a/{b", "", noop()), std::invalid_argument);
}

TEST(RouterUrlDecode, DecodesEscapesAndPlus) {
    EXPECT_EQ(url_decode("a%20b+c", false), "a b+c");
    EXPECT_EQ(url_decode("a%20b+c", true), "a b c");
    EXPECT_EQ(url_decode("%2F%2f", false), "//");
    EXPECT_EQ(url_decode("%e2%82%ac", false), "\xE2\x82\xAC");
    EXPECT_EQ(url_decode("", false), "");
    EXPECT_FALSE(url_decode("%zz", false).has_value());
    EXPECT_FALSE(url_decode("abc%2", false).has_value());
}

TEST(RouterQuery, ParsesDecodedPairsInOrder) {
    auto q = parse_query("fields=a%2Cb,c&note=x+y%21&flag&&empty=");
    ASSERT_TRUE(q.has_value());
    ASSERT_EQ(q->size(), 4u);
    EXPECT_EQ((*q)[0], (std::pair<std::string, std::string>{"fields", "a,b,c"}));
    EXPECT_EQ((*q)[1], (std::pair<std::string, std::string>{"note", "x y!"}));
    EXPECT_EQ((*q)[2], (std::pair<std::string, std::string>{"flag", ""}));
    EXPECT_EQ((*q)[3], (std::pair<std::string, std::string>{"empty", ""}));
    EXPECT_TRUE(parse_query("")->empty());
    EXPECT_FALSE(parse_query("a=%ZZ").has_value());
}

TEST(RouterTarget, SplitsPathAndQuery) {
    EXPECT_EQ(split_target("/a/b?x=1&y=2"), (std::pair<std::string_view, std::string_view>{"/a/b", "x=1&y=2"}));
    EXPECT_EQ(split_target("/a"), (std::pair<std::string_view, std::string_view>{"/a", ""}));
    EXPECT_EQ(split_target("/a?"), (std::pair<std::string_view, std::string_view>{"/a", ""}));
}

}  // namespace
}  // namespace sluice::serve
