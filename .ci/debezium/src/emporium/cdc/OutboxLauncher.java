package emporium.cdc;

import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;

/**
 * Debezium's embedded engine tailing the outbox table of one or more PostgreSQL databases by
 * logical decoding (pgoutput) and publishing each event to Kafka as Emporium's built-in relay
 * would: topic from the row's {@code topic} column, key {@code aggregateid}, value
 * {@code payload} as stored, CloudEvents headers (outbox event router + {@link CloudEventsHeaders}).
 *
 * <p>A batch's source offsets are committed only after Kafka acknowledged every record of it
 * (idempotent producer, acks=all), so a crash means redelivery, never loss; the consumers'
 * inboxes absorb the duplicates, as with the relay.
 *
 * <p>Usage: {@code OutboxLauncher --kafka kafka://host:port[,host:port][?partitions=3&replication_factor=1]
 * --state DIR SOURCE...} where SOURCE is
 * {@code postgresql://user[:password]@host:port/db[?schema=public&slot=NAME&publication=NAME]}.
 * It prints {@code [debezium] tailing <db>.<schema>} per source once its task runs, and exits
 * non-zero when any engine fails.
 */
public final class OutboxLauncher {

    private OutboxLauncher() {
    }

    public static void main(String[] args) throws Exception {
        String kafkaUrl = null;
        Path state = null;
        List<Source> sources = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--kafka" -> kafkaUrl = args[++i];
                case "--state" -> state = Path.of(args[++i]);
                default -> sources.add(Source.parse(args[i]));
            }
        }
        if (kafkaUrl == null || state == null || sources.isEmpty()) {
            System.err.println("usage: OutboxLauncher --kafka URL --state DIR SOURCE...");
            System.exit(2);
        }
        Files.createDirectories(state);
        KafkaSink sink = new KafkaSink(kafkaUrl);
        CountDownLatch failed = new CountDownLatch(1);
        List<DebeziumEngine<RecordChangeEvent<SourceRecord>>> engines = new ArrayList<>();
        ExecutorService threads = Executors.newCachedThreadPool();
        for (Source source : sources) {
            DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                    .create(ChangeEventFormat.of(Connect.class))
                    .using(source.properties(state))
                    .notifying(sink::handleBatch)
                    .using(new DebeziumEngine.ConnectorCallback() {
                        @Override
                        public void taskStarted() {
                            System.out.println("[debezium] tailing " + source);
                            System.out.flush();
                        }
                    })
                    .using((success, message, error) -> {
                        if (!success) {
                            System.err.println("[debezium] " + source + " stopped: " + message);
                            if (error != null) {
                                error.printStackTrace();
                            }
                            failed.countDown();
                        }
                    })
                    .build();
            engines.add(engine);
            threads.execute(engine);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (DebeziumEngine<?> engine : engines) {
                try {
                    engine.close(); // flushes the committed offsets
                }
                catch (Exception e) {
                    e.printStackTrace();
                }
            }
            threads.shutdown();
            try {
                threads.awaitTermination(30, TimeUnit.SECONDS);
            }
            catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            sink.close();
        }));
        failed.await();
        System.exit(1);
    }

    /** One outbox table: a database and the schema that holds its {@code outbox}. */
    record Source(String host, int port, String user, String password, String database, String schema,
            String slot, String publication) {

        static Source parse(String url) {
            URI uri = URI.create(url.replaceFirst("^postgres(ql)?(\\+asyncpg)?://", "postgresql://"));
            Map<String, String> query = query(uri.getRawQuery());
            String[] credentials = Optional.ofNullable(uri.getRawUserInfo()).orElse("postgres").split(":", 2);
            String database = uri.getPath().replaceFirst("^/", "");
            String schema = query.getOrDefault("schema", "public");
            String id = identifier(database + "_" + schema);
            return new Source(uri.getHost(), uri.getPort() > 0 ? uri.getPort() : 5432, decode(credentials[0]),
                    credentials.length > 1 ? decode(credentials[1]) : "", database, schema,
                    query.getOrDefault("slot", identifier("emporium_" + id)),
                    query.getOrDefault("publication", identifier("emporium_outbox_" + schema)));
        }

        Properties properties(Path state) {
            Properties p = new Properties();
            p.setProperty("name", "outbox-" + slot);
            p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
            p.setProperty("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore");
            p.setProperty("offset.storage.file.filename", state.resolve(slot + ".offsets").toString());
            p.setProperty("offset.flush.interval.ms", "1000");
            p.setProperty("database.hostname", host);
            p.setProperty("database.port", Integer.toString(port));
            p.setProperty("database.user", user);
            if (!password.isEmpty()) {
                p.setProperty("database.password", password);
            }
            p.setProperty("database.dbname", database);
            p.setProperty("topic.prefix", "emporium-cdc-" + slot.replace('_', '-'));
            p.setProperty("plugin.name", "pgoutput");
            p.setProperty("slot.name", slot);
            // The slot outlives a stop (a restart resumes where it left off); whoever
            // retires an outbox drops its slot.
            p.setProperty("slot.drop.on.stop", "false");
            p.setProperty("publication.name", publication);
            p.setProperty("publication.autocreate.mode", "filtered");
            p.setProperty("table.include.list", schema + "\\.outbox");
            // Events are inserts; the relay's `published_at` updates (if both ever ran) and
            // deletes of old rows are not events.
            p.setProperty("skipped.operations", "u,d,t");
            p.setProperty("tombstones.on.delete", "false");
            // On the first start, publish what the relay had not published yet, in seq order;
            // the exported snapshot of the new slot makes snapshot + stream gap-free.
            p.setProperty("snapshot.mode", "initial");
            String table = schema + ".outbox";
            p.setProperty("snapshot.select.statement.overrides", table);
            p.setProperty("snapshot.select.statement.overrides." + table,
                    "SELECT * FROM \"" + schema + "\".outbox WHERE published_at IS NULL ORDER BY seq");
            p.setProperty("poll.interval.ms", "50");
            // No `__debezium.context.*` headers: consumers get the relay's headers and no others.
            p.setProperty("extended.headers.enabled", "false");
            p.setProperty("transforms", "outbox,cloudevents");
            p.setProperty("transforms.outbox.type", "io.debezium.transforms.outbox.EventRouter");
            p.setProperty("transforms.outbox.route.by.field", "topic");
            p.setProperty("transforms.outbox.route.topic.replacement", "${routedByValue}");
            p.setProperty("transforms.outbox.table.field.event.id", "id");
            p.setProperty("transforms.outbox.table.field.event.key", "aggregateid");
            p.setProperty("transforms.outbox.table.field.event.payload", "payload");
            p.setProperty("transforms.outbox.table.fields.additional.placement",
                    "type:header:ce_type,aggregateid:header:ce_subject,created_at:header:ce_time,"
                            + "aggregatetype:header:outbox_aggregatetype,headers:header:outbox_headers");
            p.setProperty("transforms.cloudevents.type", CloudEventsHeaders.class.getName());
            return p;
        }

        @Override
        public String toString() {
            return database + "." + schema;
        }
    }

    /** The Kafka side: one idempotent producer for all sources, topics created on first use. */
    static final class KafkaSink {
        private final KafkaProducer<byte[], byte[]> producer;
        private final Admin admin;
        private final Optional<Integer> partitions;
        private final Optional<Short> replication;
        private final Set<String> topics = ConcurrentHashMap.newKeySet();

        KafkaSink(String url) {
            String rest = url.replaceFirst("^kafka://", "");
            String[] parts = rest.split("\\?", 2);
            Map<String, String> query = query(parts.length > 1 ? parts[1] : null);
            partitions = Optional.of(Integer.parseInt(query.getOrDefault("partitions", "3")));
            replication = Optional.ofNullable(query.get("replication_factor")).map(Short::parseShort);
            Properties p = new Properties();
            p.setProperty("bootstrap.servers", parts[0]);
            p.setProperty("client.id", "emporium-debezium");
            p.setProperty("enable.idempotence", "true");
            p.setProperty("acks", "all");
            p.setProperty("linger.ms", "0");
            producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
            Properties a = new Properties();
            a.setProperty("bootstrap.servers", parts[0]);
            a.setProperty("client.id", "emporium-debezium-admin");
            admin = Admin.create(a);
        }

        /** Publish a batch in order, wait for every acknowledgement, then commit its offsets. */
        void handleBatch(List<RecordChangeEvent<SourceRecord>> batch,
                DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
                throws InterruptedException {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (RecordChangeEvent<SourceRecord> event : batch) {
                SourceRecord record = event.record();
                if (record != null && isEvent(record)) {
                    ensureTopic(record.topic());
                    acks.add(producer.send(toProducerRecord(record)));
                }
            }
            for (Future<RecordMetadata> ack : acks) {
                try {
                    ack.get();
                }
                catch (ExecutionException e) {
                    throw new IllegalStateException("Kafka did not acknowledge an outbox event", e.getCause());
                }
            }
            for (RecordChangeEvent<SourceRecord> event : batch) {
                committer.markProcessed(event);
            }
            committer.markBatchFinished();
        }

        /** The router passes non-change records (heartbeats) through as structs: not events. */
        private static boolean isEvent(SourceRecord record) {
            return record.valueSchema() == null || record.valueSchema().type() != Schema.Type.STRUCT;
        }

        private static ProducerRecord<byte[], byte[]> toProducerRecord(SourceRecord record) {
            RecordHeaders headers = new RecordHeaders();
            for (Header header : record.headers()) {
                headers.add(header.key(), bytes(header.value()));
            }
            return new ProducerRecord<>(record.topic(), null, null, bytes(record.key()), bytes(record.value()), headers);
        }

        private static byte[] bytes(Object value) {
            if (value == null) {
                return null;
            }
            if (value instanceof byte[] raw) {
                return raw;
            }
            return value.toString().getBytes(StandardCharsets.UTF_8);
        }

        private void ensureTopic(String topic) throws InterruptedException {
            if (topics.contains(topic)) {
                return;
            }
            try {
                admin.createTopics(List.of(new NewTopic(topic, partitions, replication))).all().get();
            }
            catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw new IllegalStateException("cannot create topic " + topic, e.getCause());
                }
            }
            topics.add(topic);
        }

        void close() {
            producer.close();
            admin.close();
        }
    }

    static Map<String, String> query(String raw) {
        Map<String, String> out = new LinkedHashMap<>();
        if (raw == null || raw.isEmpty()) {
            return out;
        }
        for (String pair : raw.split("&")) {
            String[] kv = pair.split("=", 2);
            out.put(decode(kv[0]), kv.length > 1 ? decode(kv[1]) : "");
        }
        return out;
    }

    private static String decode(String text) {
        return URLDecoder.decode(text, StandardCharsets.UTF_8);
    }

    /** A PostgreSQL replication slot / publication name: [a-z0-9_], at most 63 characters. */
    private static String identifier(String text) {
        String clean = text.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9_]", "_");
        return clean.length() <= 63 ? clean : clean.substring(0, 63);
    }
}
