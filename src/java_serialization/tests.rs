use super::*;
use crate::model::value::Value;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// `ObjectOutputStream.writeObject` of a `Thing` (JDK 17, `/tmp` harness kept in the commit
/// message): every primitive field type, strings with non-BMP characters, null, primitive and
/// object arrays with a back-referenced string, ArrayList / HashMap / LinkedHashSet / TreeMap
/// (writeObject annotations), enum constants (one with a body, an anonymous subclass),
/// BigInteger, BigDecimal, Date, a Class object, a cycle (`self`), and a superclass's fields.
const THING: &str = "
aced00057372000a476f6c64245468696e67877b11985458e680020017420001624300026368460001665a0004666c61
674a00026964440005726174696f530001734c00036269677400164c6a6176612f6d6174682f426967496e7465676572
3b4c0002633174000c4c476f6c6424436f6c6f723b4c0002633271007e00024c0003636c737400114c6a6176612f6c61
6e672f436c6173733b4c0004646174657400104c6a6176612f7574696c2f446174653b4c00036465637400164c6a6176
612f6d6174682f426967446563696d616c3b5b0004696e74737400025b494c00046c6973747400104c6a6176612f7574
696c2f4c6973743b4c00036d617074000f4c6a6176612f7574696c2f4d61703b4c00046e616d657400124c6a6176612f
6c616e672f537472696e673b5b00056e616d65737400135b4c6a6176612f6c616e672f537472696e673b4c00076e6f74
68696e6771007e00095b00037261777400025b424c000473656c6674000c4c476f6c64245468696e673b4c0003736574
74000f4c6a6176612f7574696c2f5365743b4c00047472656571007e000878720009476f6c642442617365afa772f4bb
cdeaba020002490009626173654669656c644c000673686172656471007e000978700000000774000462617365fd00e9
3dcccccd01fffffffdb34fe9163fe0000000000000012c737200146a6176612e6d6174682e426967496e74656765728c
fc9f1fa93bfb1d030006490008626974436f756e744900096269744c656e67746849001366697273744e6f6e7a65726f
427974654e756d49000c6c6f776573745365744269744900067369676e756d5b00096d61676e697475646571007e000b
787200106a6176612e6c616e672e4e756d62657286ac951d0b94e08b0200007870fffffffffffffffffffffffeffffff
feffffffff757200025b42acf317f8060854e002000078700000000d018ee90ff6c373e0ee4e3f0ad2787e72000a476f
6c6424436f6c6f7200000000000000001200007872000e6a6176612e6c616e672e456e756d0000000000000000120000
78707400035245447e71007e0016740005475245454e767200106a6176612e6c616e672e537472696e67a0f0a4387a3b
b34202000078707372000e6a6176612e7574696c2e44617465686a81014b597419030000787077080000018bcfe56805
78737200146a6176612e6d6174682e426967446563696d616c54c71557f981284f0300024900057363616c654c000669
6e7456616c71007e00017871007e0012000000047371007e0011fffffffffffffffffffffffefffffffeffffffff7571
007e001400000003bc61007878757200025b494dba602676eab2a502000078700000000200000001fffffffe73720013
6a6176612e7574696c2e41727261794c6973747881d21d99c7619d03000149000473697a657870000000047704000000
04737200116a6176612e6c616e672e496e746567657212e2a0a4f781873802000149000576616c75657871007e001200
00000174000374776f7372000e6a6176612e6c616e672e4c6f6e673b8be490cc8f23df0200014a000576616c75657871
007e001200000000000000037078737200116a6176612e7574696c2e486173684d61700507dac1c31660d10300024600
0a6c6f6164466163746f724900097468726573686f6c6478703f4000000000000c770800000010000000017400016b71
007e00297874000d6e61c3af766520eda0bdedb880757200135b4c6a6176612e6c616e672e537472696e673badd256e7
e91d7b47020000787000000003740001617071007e0033707571007e00140000000201ff71007e000f737200176a6176
612e7574696c2e4c696e6b656448617368536574d86cd75a95dd2a1e020000787200116a6176612e7574696c2e486173
68536574ba44859596b8b7340300007870770c000000103f40000000000002740001787400017978737200116a617661
2e7574696c2e547265654d61700cc1f63e2d256ae60300014c000a636f6d70617261746f727400164c6a6176612f7574
696c2f436f6d70617261746f723b78707077040000000271007e00337372001a6a6176612e7574696c2e417272617973
2441727261794c697374d9a43cbecd8806d20200015b0001617400135b4c6a6176612f6c616e672f4f626a6563743b78
70757200145b4c6a6176612e6c616e672e496e74656765723bfe97ada00183e21b02000078700000000271007e002973
71007e00280000000274000162737200106a6176612e6c616e672e446f75626c6580b3c24a296bfb0402000144000576
616c75657871007e0012400400000000000078";

#[test]
fn reads_a_jdk_object_graph() {
    let bytes = hex(THING);
    let mut c = Cursor::new(&bytes);
    let g = read_stream(&mut c).unwrap();
    assert!(c.is_empty(), "{} bytes left", c.remaining());
    let j = g.to_value().to_json();
    assert_eq!(j["@class"], "Gold$Thing");
    assert_eq!(j["baseField"], 7);
    assert_eq!(j["shared"], "base");
    assert_eq!(j["id"], -9876543210i64);
    assert_eq!(j["ratio"], 0.5);
    assert_eq!(j["f"], 0.1);
    assert_eq!(j["ch"], "é");
    assert_eq!(j["flag"], true);
    assert_eq!(j["b"], -3);
    assert_eq!(j["s"], 300);
    assert_eq!(j["name"], "naïve 😀");
    assert_eq!(j["nothing"], serde_json::Value::Null);
    assert_eq!(j["ints"], serde_json::json!([1, -2]));
    assert_eq!(j["raw"], serde_json::json!({"hex": "01ff"}));
    assert_eq!(j["names"], serde_json::json!(["a", null, "a"]));
    assert_eq!(j["list"], serde_json::json!([1, "two", 3, null]));
    assert_eq!(j["map"], serde_json::json!([{"key": "k", "value": 1}]));
    assert_eq!(j["set"], serde_json::json!(["x", "y"]));
    assert_eq!(j["tree"], serde_json::json!([{"key": "a", "value": [1, 2]}, {"key": "b", "value": 2.5}]));
    assert_eq!(j["c1"], "RED");
    assert_eq!(j["c2"], "GREEN");
    assert_eq!(j["big"], "-123456789012345678901234567890");
    assert_eq!(j["dec"], "-1234.5600");
    assert_eq!(j["date"], "2023-11-14T22:13:20.005Z");
    assert_eq!(j["cls"], "java.lang.String");
    assert!(j["self"]["@ref"].is_number(), "a cycle is cut: {}", j["self"]);
    // Field access for callers that pick fields (checkpoint properties, TTL config).
    assert_eq!(g.field(&g.root, "baseField"), Some(&JavaValue::Int(7)));
    assert_eq!(g.class_of(&g.root), Some("Gold$Thing"));
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let bytes = hex(THING);
    for n in 0..bytes.len() {
        assert!(read_stream(&mut Cursor::new(&bytes[..n])).is_err(), "prefix {n}");
    }
    let mut rng = 0x1234_5678_9abc_def0u64;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut d = bytes.clone();
        let i = (rng % d.len() as u64) as usize;
        d[i] ^= 1 << (rng >> 60 & 7);
        if let Ok(g) = read_stream(&mut Cursor::new(&d)) {
            let _ = g.to_value().to_json();
        }
    }
}

#[test]
fn not_a_stream() {
    let e = read_stream(&mut Cursor::new(&[0xac, 0xed, 0, 4, 0x70])).unwrap_err();
    assert!(e.to_string().contains("not a Java serialization stream"), "{e}");
    let g = read_stream(&mut Cursor::new(&[0xac, 0xed, 0, 5, 0x70])).unwrap();
    assert_eq!(g.to_value(), Value::Null);
}

/// Found by the `java_serialization` fuzz target (fuzz/regressions/java_serialization/): a
/// reset in a class descriptor's annotation cleared the handle table while the descriptor's own
/// handle was still to be filled in (index out of bounds). Java refuses a reset inside an
/// object; so does the reader, at the reset's offset. Resets ahead of the top-level object are
/// read as Java reads them.
#[test]
fn reset_only_between_top_level_objects() {
    // TC_OBJECT, TC_CLASSDESC "A", serialVersionUID 1, SC_SERIALIZABLE, no fields, then TC_RESET
    // in the class annotation.
    let nested = hex("aced0005 73 72 0001 41 0000000000000001 02 0000 79 78 70");
    let e = read_stream(&mut Cursor::new(&nested)).unwrap_err();
    assert!(e.to_string().contains("TC_RESET"), "{e}");
    assert_eq!(e.position(), Some(crate::error::Position::file(20)), "{e}");
    // Two resets, then a string.
    let top = hex("aced0005 79 79 74 0002 6869");
    let g = read_stream(&mut Cursor::new(&top)).unwrap();
    assert_eq!(g.root, JavaValue::String("hi".into()));
    // The input the fuzzer found.
    let found = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/java_serialization/reset-in-class-annotation")).unwrap();
    let e = read_stream(&mut Cursor::new(&found)).unwrap_err();
    assert!(e.to_string().contains("TC_RESET"), "{e}");
}
