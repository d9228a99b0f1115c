import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * A String serializer in the default package, with its snapshot class there too
 * ({@code OpaqueSerializer$Snapshot}: a binary name without a dot). {@code CustomSerializerJob
 * --variant opaque} registers two operator states under it: flinksnap reads past one unknown
 * snapshot of a default-package class, but not past a second met after an assumed end
 * ({@code formats/serializers.md} § Unknown snapshots), so the operator-state registrations from
 * the first on cannot be read. Loaded by name (a named package cannot import this one).
 */
public final class OpaqueSerializer extends TypeSerializer<String> {
    private static final long serialVersionUID = 1L;

    public OpaqueSerializer() {}

    @Override
    public boolean isImmutableType() {
        return true;
    }

    @Override
    public TypeSerializer<String> duplicate() {
        return this;
    }

    @Override
    public String createInstance() {
        return "";
    }

    @Override
    public String copy(String from) {
        return from;
    }

    @Override
    public String copy(String from, String reuse) {
        return from;
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(String record, DataOutputView target) throws IOException {
        target.writeUTF(record);
    }

    @Override
    public String deserialize(DataInputView source) throws IOException {
        return source.readUTF();
    }

    @Override
    public String deserialize(String reuse, DataInputView source) throws IOException {
        return deserialize(source);
    }

    @Override
    public void copy(DataInputView source, DataOutputView target) throws IOException {
        target.writeUTF(source.readUTF());
    }

    @Override
    public boolean equals(Object obj) {
        return obj instanceof OpaqueSerializer;
    }

    @Override
    public int hashCode() {
        return OpaqueSerializer.class.hashCode();
    }

    @Override
    public TypeSerializerSnapshot<String> snapshotConfiguration() {
        return new Snapshot();
    }

    /** The snapshot: a version and a few bytes of configuration. */
    public static final class Snapshot implements TypeSerializerSnapshot<String> {
        public Snapshot() {}

        @Override
        public int getCurrentVersion() {
            return 1;
        }

        @Override
        public void writeSnapshot(DataOutputView out) throws IOException {
            out.writeUTF("opaque");
        }

        @Override
        public void readSnapshot(int readVersion, DataInputView in, ClassLoader userCodeClassLoader) throws IOException {
            if (!in.readUTF().equals("opaque")) throw new IOException("not an OpaqueSerializer snapshot");
        }

        @Override
        public TypeSerializer<String> restoreSerializer() {
            return new OpaqueSerializer();
        }

        // 1.x's method (removed in 2.0: then only an extra method).
        public TypeSerializerSchemaCompatibility<String> resolveSchemaCompatibility(TypeSerializer<String> newSerializer) {
            return TypeSerializerSchemaCompatibility.compatibleAsIs();
        }

        // 1.19+ (FLIP-263).
        public TypeSerializerSchemaCompatibility<String> resolveSchemaCompatibility(TypeSerializerSnapshot<String> oldSerializerSnapshot) {
            return TypeSerializerSchemaCompatibility.compatibleAsIs();
        }
    }
}
