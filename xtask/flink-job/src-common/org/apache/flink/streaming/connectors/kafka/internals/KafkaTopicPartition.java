package org.apache.flink.streaming.connectors.kafka.internals;

/**
 * Stands in for the Kafka connector's class of this name (not in the 2.x connector, and no 1.x
 * connector jar is at hand): the same fields, so Kryo writes it exactly as the legacy
 * {@code FlinkKafkaConsumer}'s union state {@code topic-partition-offset-states} holds it.
 */
public final class KafkaTopicPartition implements java.io.Serializable {
    private static final long serialVersionUID = 722083576322742325L;
    private final String topic;
    private final int partition;
    private final int cachedHash;

    public KafkaTopicPartition(String topic, int partition) {
        this.topic = topic;
        this.partition = partition;
        this.cachedHash = 31 * topic.hashCode() + partition;
    }

    public String getTopic() {
        return topic;
    }

    public int getPartition() {
        return partition;
    }

    @Override
    public int hashCode() {
        return cachedHash;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof KafkaTopicPartition && ((KafkaTopicPartition) o).partition == partition && ((KafkaTopicPartition) o).topic.equals(topic);
    }
}
