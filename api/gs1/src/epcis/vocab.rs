//! CBV 2.0 standard vocabularies as EPCIS 2.0 JSON-LD writes them (bare words such as
//! `shipping`, `in_transit`, `Temperature`) and their full web URIs.
//!
//! The term lists are those of the EPCIS 2.0 JSON-LD context (`epcis-context.jsonld`, the
//! type-scoped contexts of `bizStep`, `disposition`, `persistentDisposition`,
//! `bizTransactionList.type`, `sourceList.type`, `errorDeclaration.reason`,
//! `sensorReport.type`, `sensorReport.exception` and `sensorReport.component`). A bare word
//! outside its list is not a CBV value: validation rejects it where a vocabulary is expected.

/// One standard vocabulary: where its bare words expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// CBV §7.1 business steps, `https://ref.gs1.org/cbv/BizStep-…`.
    BizStep,
    /// CBV §7.2 dispositions, `https://ref.gs1.org/cbv/Disp-…`.
    Disposition,
    /// CBV §7.3 business transaction types, `https://ref.gs1.org/cbv/BTT-…`.
    BizTransactionType,
    /// CBV §7.4 source/destination types, `https://ref.gs1.org/cbv/SDT-…`.
    SourceDestinationType,
    /// CBV §7.5 error reasons, `https://ref.gs1.org/cbv/ER-…`.
    ErrorReason,
    /// GS1 web vocabulary measurement types, `https://ref.gs1.org/voc/…`.
    MeasurementType,
    /// GS1 web vocabulary sensor alert types, `https://ref.gs1.org/voc/…`.
    SensorAlertType,
    /// CBV §7.6 components, `https://ref.gs1.org/cbv/Comp-…`.
    Component,
}

/// The CBV web vocabulary base (CBV 2.0 §6).
pub const CBV_BASE: &str = "https://ref.gs1.org/cbv/";
/// The GS1 web vocabulary base as the event-hash algorithm expands `gs1:` (rule 15).
pub const GS1_VOC_BASE: &str = "https://ref.gs1.org/voc/";

const BIZ_STEPS: &[&str] = &[
    "accepting",
    "arriving",
    "assembling",
    "collecting",
    "commissioning",
    "consigning",
    "creating_class_instance",
    "cycle_counting",
    "decommissioning",
    "departing",
    "destroying",
    "disassembling",
    "dispensing",
    "encoding",
    "entering_exiting",
    "holding",
    "inspecting",
    "installing",
    "killing",
    "loading",
    "other",
    "packing",
    "picking",
    "receiving",
    "removing",
    "repackaging",
    "repairing",
    "replacing",
    "reserving",
    "retail_selling",
    "sampling",
    "sensor_reporting",
    "shipping",
    "staging_outbound",
    "stock_taking",
    "stocking",
    "storing",
    "transporting",
    "unloading",
    "unpacking",
    "void_shipping",
];

const DISPOSITIONS: &[&str] = &[
    "active",
    "available",
    "completeness_verified",
    "completeness_inferred",
    "conformant",
    "container_closed",
    "container_open",
    "damaged",
    "destroyed",
    "dispensed",
    "disposed",
    "encoded",
    "expired",
    "in_progress",
    "in_transit",
    "inactive",
    "mismatch_instance",
    "mismatch_class",
    "mismatch_quantity",
    "needs_replacement",
    "no_pedigree_match",
    "non_conformant",
    "non_sellable_other",
    "partially_dispensed",
    "recalled",
    "reserved",
    "retail_sold",
    "returned",
    "sellable_accessible",
    "sellable_not_accessible",
    "stolen",
    "unavailable",
    "unknown",
];

const BIZ_TRANSACTION_TYPES: &[&str] = &[
    "bol",
    "cert",
    "desadv",
    "inv",
    "pedigree",
    "po",
    "poc",
    "prodorder",
    "recadv",
    "rma",
    "testprd",
    "testres",
    "upevt",
];

const SOURCE_DESTINATION_TYPES: &[&str] = &["owning_party", "possessing_party", "location"];

const ERROR_REASONS: &[&str] = &["did_not_occur", "incorrect_data"];

const MEASUREMENT_TYPES: &[&str] = &[
    "AbsoluteHumidity",
    "AbsorbedDose",
    "AbsorbedDoseRate",
    "Acceleration",
    "Radioactivity",
    "Altitude",
    "AmountOfSubstance",
    "AmountOfSubstancePerUnitVolume",
    "Angle",
    "AngularAcceleration",
    "AngularMomentum",
    "AngularVelocity",
    "Area",
    "Capacitance",
    "Conductance",
    "Conductivity",
    "Count",
    "Density",
    "Dimensionless",
    "DoseEquivalent",
    "DoseEquivalentRate",
    "DynamicViscosity",
    "ElectricCharge",
    "ElectricCurrent",
    "ElectricCurrentDensity",
    "ElectricFieldStrength",
    "Energy",
    "Exposure",
    "Force",
    "Frequency",
    "Illuminance",
    "Inductance",
    "Irradiance",
    "KinematicViscosity",
    "Length",
    "LinearMomentum",
    "Luminance",
    "LuminousFlux",
    "LuminousIntensity",
    "MagneticFlux",
    "MagneticFluxDensity",
    "MagneticVectorPotential",
    "Mass",
    "MassConcentration",
    "MassFlowRate",
    "MassPerAreaTime",
    "MemoryCapacity",
    "MolalityOfSolute",
    "MolarEnergy",
    "MolarMass",
    "MolarVolume",
    "Power",
    "Pressure",
    "RadiantFlux",
    "RadiantIntensity",
    "RelativeHumidity",
    "Resistance",
    "Resistivity",
    "SolidAngle",
    "SpecificVolume",
    "Speed",
    "SurfaceDensity",
    "SurfaceTension",
    "Temperature",
    "Time",
    "Torque",
    "Voltage",
    "Volume",
    "VolumeFlowRate",
    "VolumeFraction",
    "VolumetricFlux",
    "Wavenumber",
];

const SENSOR_ALERT_TYPES: &[&str] = &["ALARM_CONDITION", "ERROR_CONDITION"];

const COMPONENTS: &[&str] = &[
    "x",
    "y",
    "z",
    "axial_distance",
    "azimuth",
    "height",
    "spherical_radius",
    "polar_angle",
    "elevation_angle",
    "easting",
    "northing",
    "latitude",
    "longitude",
    "altitude",
];

impl Vocabulary {
    fn terms(self) -> &'static [&'static str] {
        match self {
            Self::BizStep => BIZ_STEPS,
            Self::Disposition => DISPOSITIONS,
            Self::BizTransactionType => BIZ_TRANSACTION_TYPES,
            Self::SourceDestinationType => SOURCE_DESTINATION_TYPES,
            Self::ErrorReason => ERROR_REASONS,
            Self::MeasurementType => MEASUREMENT_TYPES,
            Self::SensorAlertType => SENSOR_ALERT_TYPES,
            Self::Component => COMPONENTS,
        }
    }

    fn uri_prefix(self) -> &'static str {
        match self {
            Self::BizStep => "https://ref.gs1.org/cbv/BizStep-",
            Self::Disposition => "https://ref.gs1.org/cbv/Disp-",
            Self::BizTransactionType => "https://ref.gs1.org/cbv/BTT-",
            Self::SourceDestinationType => "https://ref.gs1.org/cbv/SDT-",
            Self::ErrorReason => "https://ref.gs1.org/cbv/ER-",
            Self::MeasurementType | Self::SensorAlertType => GS1_VOC_BASE,
            Self::Component => "https://ref.gs1.org/cbv/Comp-",
        }
    }

    /// Whether `word` is one of this vocabulary's bare words.
    pub fn contains(self, word: &str) -> bool {
        self.terms().contains(&word)
    }

    /// The full web URI of a bare word of this vocabulary (EPCIS 2.0 JSON-LD writes standard
    /// values as bare words; the event hash expands them, rule 16), or `None` if `word` is not
    /// one of its terms.
    pub fn expand(self, word: &str) -> Option<String> {
        self.contains(word)
            .then(|| format!("{}{word}", self.uri_prefix()))
    }
}

/// The pre-CBV-2.0 URN forms of standard vocabulary values and their web URI equivalents
/// (event hash rule 14: `urn:epcglobal:cbv:bizstep:receiving` ->
/// `https://ref.gs1.org/cbv/BizStep-receiving`).
pub const URN_TO_WEB: &[(&str, &str)] = &[
    (
        "urn:epcglobal:cbv:bizstep:",
        "https://ref.gs1.org/cbv/BizStep-",
    ),
    ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
    ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
    ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
    ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_words_expand_to_web_uris() {
        assert_eq!(
            Vocabulary::BizStep.expand("shipping").as_deref(),
            Some("https://ref.gs1.org/cbv/BizStep-shipping")
        );
        assert_eq!(
            Vocabulary::Disposition.expand("in_transit").as_deref(),
            Some("https://ref.gs1.org/cbv/Disp-in_transit")
        );
        assert_eq!(
            Vocabulary::MeasurementType.expand("Temperature").as_deref(),
            Some("https://ref.gs1.org/voc/Temperature")
        );
        assert_eq!(
            Vocabulary::Component.expand("x").as_deref(),
            Some("https://ref.gs1.org/cbv/Comp-x")
        );
    }

    #[test]
    fn unknown_words_do_not_expand() {
        assert_eq!(Vocabulary::BizStep.expand("harvesting"), None);
        assert_eq!(Vocabulary::Disposition.expand("Shipping"), None);
        assert_eq!(Vocabulary::MeasurementType.expand("temperature"), None);
    }
}
