// The frames a group commit pushes to its recipients are put together from each message's bytes,
// serialized once, instead of being encoded per recipient. They must be the very frames the
// generated encoder makes of the same EventBatch, or a client could read them differently.

#include "core/FrameCodec.h"
#include "ferry.pb.h"
#include "server-stub/CommittedEvents.h"

#include <QTest>

using namespace ferry;
using namespace ferry::server;

class PushFramesTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void pushIsWhatTheEncoderMakes_data()
    {
        QTest::addColumn<QList<quint64>>("offsets");
        QTest::addColumn<int>("bodyBytes");
        QTest::addColumn<bool>("caughtUp");

        QTest::newRow("one event, caught up") << QList<quint64> { 1 } << 100 << true;
        QTest::newRow("several events, not caught up")
            << QList<quint64> { 41, 42, 43, 44 } << 100 << false;
        QTest::newRow("offsets of several varint bytes")
            << QList<quint64> { 127, 128, 16383, 16384, 1ull << 40 } << 20 << true;
        QTest::newRow("empty body") << QList<quint64> { 7 } << 0 << true;
        QTest::newRow("body longer than a one-byte length")
            << QList<quint64> { 9, 10 } << 300 << true;
        QTest::newRow("body of a three-byte length") << QList<quint64> { 3 } << 70000 << false;
        QTest::newRow("no events") << QList<quint64> {} << 10 << true;
    }

    void pushIsWhatTheEncoderMakes()
    {
        QFETCH(QList<quint64>, offsets);
        QFETCH(int, bodyBytes);
        QFETCH(bool, caughtUp);

        v1::Envelope expected;
        v1::EventBatch* batch = expected.mutable_events();
        QList<CommittedEvent> events;
        for (qsizetype i = 0; i < offsets.size(); ++i) {
            v1::MessageEvent message;
            message.set_message_id(std::string(16, char('a' + i)));
            message.set_conversation_id("group:7b1c0a52-0000-4000-8000-000000000001");
            message.set_seq(1000 + quint64(i));
            message.set_sender("alice");
            message.set_sender_device(3);
            message.set_body(std::string(size_t(bodyBytes), char('0' + i)));
            message.set_server_time_ms(1'796'000'000'000 + i);

            v1::Event* event = batch->add_events();
            event->set_offset(offsets[i]);
            *event->mutable_message() = message;
            events.append(CommittedEvent { offsets[i], serializeMessageEvent(message), bodyBytes });
        }
        batch->set_caught_up(caughtUp);
        batch->set_last_offset(offsets.isEmpty() ? 0 : offsets.last());

        const QByteArray pushed = encodeEventPush(events.constData(), events.size(), caughtUp);
        QCOMPARE(pushed.toHex(), encodeFrame(expected).toHex());

        v1::Envelope decoded;
        QVERIFY(decodeFrame(pushed, &decoded));
        QCOMPARE(decoded.request_id(), 0u);
        QCOMPARE(decoded.events().events_size(), offsets.size());
        QCOMPARE(decoded.events().caught_up(), caughtUp);
    }
};

QTEST_GUILESS_MAIN(PushFramesTest)
#include "tst_server_push_frames.moc"
