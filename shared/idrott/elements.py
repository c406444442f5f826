"""Every XML element and attribute name of the IdrottOnline import file, in one place.

RF gives its official XSD only to licensees. Our model (file model v1, see
docs/idrottonline-format.md) mirrors IdrottOnline's import data model; the day a licensee gets
RF's XSD, renaming an element is a change here (plus ``schema/import_v1.xsd``, which a test keeps
in step with this module). No logic, no imports.
"""

from __future__ import annotations

FORMAT_VERSION = "1"

# --- root and header ------------------------------------------------------------------------
IMPORT = "Import"
ATTR_VERSION = "Version"
APPLICATION_ID = "ApplicationId"
ORGANISATION_GUID = "OrganisationGuid"
ORGANISATION_IDENTITY_NUMBER = "OrganisationIdentityNumber"
BATCH_ID = "BatchId"
FILE_SEQUENCE = "FileSequence"
FILE_COUNT = "FileCount"
CREATED_AT = "CreatedAt"

# --- persons --------------------------------------------------------------------------------
PERSONS = "Persons"
PERSON = "Person"
EXTERNAL_IDENTIFICATION = "ExternalIdentification"
OPTION_TYPE = "OptionType"
CREATE_DATE = "CreateDate"
CHANGE_DATE = "ChangeDate"
PERSONAL_IDENTITY_NUMBER = "PersonalIdentityNumber"
BIRTH_DATE = "BirthDate"
FIRST_NAME = "FirstName"
LAST_NAME = "LastName"
GENDER = "Gender"
NATIONALITY = "Nationality"
CONTACT = "Contact"
EMAIL = "Email"
MOBILE_PHONE = "MobilePhone"
STREET = "Street"
CO_ADDRESS = "CoAddress"
POSTAL_CODE = "PostalCode"
CITY = "City"
COUNTRY_CODE = "CountryCode"
ORGANISATIONS = "Organisations"
ORGANISATION = "Organisation"
EXTERNAL_ORGANISATION_IDENTIFICATION = "ExternalOrganisationIdentification"
# Organisation/OrganisationIdentityNumber reuses ORGANISATION_IDENTITY_NUMBER
MEMBER_SINCE = "MemberSince"
SPORTS = "Sports"
SPORT = "Sport"
SPORT_ID = "SportID"
IS_ACTIVE = "IsActive"

# --- activities -----------------------------------------------------------------------------
ACTIVITIES = "Activities"
ACTIVITY = "Activity"
ACTIVITY_ID = "ActivityId"
TYPE_ID = "TypeId"
NAME = "Name"
DESCRIPTION = "Description"
START_TIME = "StartTime"
END_TIME = "EndTime"
ORGANISATION_NUMBER = "OrganisationNumber"
# Activity/SportID reuses SPORT_ID
VENUE = "Venue"
VENUE_NAME = "VenueName"
PARTICIPANTS = "Participants"
PARTICIPANT = "Participant"
PERSON_ID = "PersonId"
LEADER = "Leader"
DISABLED = "Disabled"
ATTENDANCE_STATUS = "AttendanceStatus"

# --- values ---------------------------------------------------------------------------------
OPTION_UPDATE = "Update"  # persons, organisations, sports
OPTION_INSERT = "Insert"  # activity: create or replace
OPTION_DELETE = "Delete"  # activity: delete
ATTENDANCE_ATTENDANT = "Attendant"
TRUE = "true"
FALSE = "false"
GENDER_MALE = "male"
GENDER_FEMALE = "female"

#: TypeId → Swedish name (reference).
ACTIVITY_TYPES: dict[int, str] = {
    1: "Träning",
    2: "Match/Tävling/Cup",
    3: "Möte",
    4: "Utbildning",
    5: "Läger",
    6: "Övrigt",
    7: "Årsmöte",
    8: "Styrelsemöte",
    9: "Kommittémöte",
}
#: Meeting types: not sport activities for LOK-stöd (inferred, not confirmed by RF).
MEETING_TYPES = frozenset({3, 7, 8, 9})


def all_element_names() -> frozenset[str]:
    """Every element name above (used by the test that keeps the XSD in step)."""
    values = {
        "FORMAT_VERSION",
        "ATTR_VERSION",
        "TRUE",
        "FALSE",
        "OPTION_UPDATE",
        "OPTION_INSERT",
        "OPTION_DELETE",
        "ATTENDANCE_ATTENDANT",
        "GENDER_MALE",
        "GENDER_FEMALE",
    }
    return frozenset(v for k, v in globals().items() if k.isupper() and k not in values and isinstance(v, str))
