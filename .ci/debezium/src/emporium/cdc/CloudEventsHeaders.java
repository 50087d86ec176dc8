package emporium.cdc;

import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.header.Headers;
import org.apache.kafka.connect.transforms.Transformation;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Turns the headers that Debezium's outbox event router placed into the CloudEvents binary
 * headers that Emporium's built-in relay writes (src/emporium/chassis/events/envelope.py,
 * event_headers), byte for byte and in the same order.
 *
 * <p>Why an SMT at all: the router places one column as one header, but the outbox keeps the
 * CloudEvents source and the W3C trace context together in one JSON column, {@code headers}; and
 * {@code ce_specversion} is a constant, and {@code ce_time} must be written as the relay writes
 * it (RFC 3339 in UTC with a {@code Z}, microseconds only when there are any). Run it right after
 * the router, which must be configured with
 * {@code table.fields.additional.placement=type:header:ce_type,aggregateid:header:ce_subject,
 * created_at:header:ce_time,aggregatetype:header:outbox_aggregatetype,headers:header:outbox_headers}
 * (the router itself always adds {@code id}). Records without an {@code id} header (not outbox
 * events) pass unchanged.
 */
public final class CloudEventsHeaders<R extends ConnectRecord<R>> implements Transformation<R> {

    static final String SPEC_VERSION = "1.0";
    static final String SOURCE_PREFIX = "/emporium/";
    static final String JSON = "application/json";

    /** The router's working headers, consumed here and not published. */
    private static final Set<String> CONSUMED =
            Set.of("id", "ce_type", "ce_subject", "ce_time", "outbox_aggregatetype", "outbox_headers");

    private static final DateTimeFormatter SECONDS = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss");

    private final ObjectMapper json = new ObjectMapper();

    @Override
    public R apply(R record) {
        Headers in = record.headers();
        if (in.lastWithName("id") == null) {
            return record;
        }
        JsonNode extra = parse(text(in, "outbox_headers"));
        ConnectHeaders out = new ConnectHeaders();
        out.addString("ce_specversion", SPEC_VERSION);
        out.addString("ce_id", required(in, "id"));
        out.addString("ce_source", field(extra, "ce_source", SOURCE_PREFIX + text(in, "outbox_aggregatetype")));
        out.addString("ce_type", required(in, "ce_type"));
        out.addString("ce_time", formatTime(required(in, "ce_time")));
        out.addString("ce_subject", required(in, "ce_subject"));
        out.addString("content-type", field(extra, "content-type", JSON));
        for (String trace : new String[] { "traceparent", "tracestate" }) {
            String value = field(extra, trace, "");
            if (!value.isEmpty()) {
                out.addString(trace, value);
            }
        }
        for (Header header : in) {
            if (!CONSUMED.contains(header.key())) {
                out.add(header);
            }
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
                record.valueSchema(), record.value(), record.timestamp(), out);
    }

    /** RFC 3339 in UTC as Python's isoformat writes it: fraction only if non-zero, 6 digits. */
    static String formatTime(String zoned) {
        OffsetDateTime moment = OffsetDateTime.parse(zoned).withOffsetSameInstant(ZoneOffset.UTC);
        int micros = moment.getNano() / 1_000;
        String fraction = micros == 0 ? "" : String.format(".%06d", micros);
        return SECONDS.format(moment) + fraction + "Z";
    }

    private JsonNode parse(String text) {
        if (text.isEmpty()) {
            return json.createObjectNode();
        }
        try {
            return json.readTree(text);
        }
        catch (Exception e) {
            throw new DataException("outbox headers column is not JSON: " + text, e);
        }
    }

    private static String field(JsonNode node, String name, String fallback) {
        JsonNode value = node.get(name);
        return value == null || value.isNull() ? fallback : value.asText();
    }

    private static String text(Headers headers, String name) {
        Header header = headers.lastWithName(name);
        return header == null || header.value() == null ? "" : header.value().toString();
    }

    private static String required(Headers headers, String name) {
        String value = text(headers, name);
        if (value.isEmpty()) {
            throw new DataException("outbox event without " + name + " (check the router's additional placement)");
        }
        return value;
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef();
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public void close() {
    }
}
